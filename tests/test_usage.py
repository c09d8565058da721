from decimal import Decimal

from tollway.usage import INVALID, Usage, read_reported, to_openai


def test_openai_shape() -> None:
    reported = read_reported(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 30, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 5, "accepted_prediction_tokens": 1},
        }
    )
    assert reported is not None
    assert (
        reported.prompt,
        reported.completion,
        reported.cached,
        reported.cache_write,
        reported.reasoning,
    ) == (
        100,
        20,
        30,
        None,
        5,
    )


def test_cache_write_aliases() -> None:
    for usage in (
        {"prompt_tokens_details": {"cache_write_tokens": 7}},
        {"prompt_tokens_details": {"cache_creation_tokens": 7}},
        {"cache_creation_input_tokens": 7},
    ):
        reported = read_reported({"prompt_tokens": 10, "completion_tokens": 1, **usage})
        assert reported is not None and reported.cache_write == 7


def test_anthropic_and_deepseek_style_cache_reads() -> None:
    assert read_reported(
        {"input_tokens": 9, "output_tokens": 2, "cache_read_input_tokens": 4}
    ) == read_reported({"input_tokens": 9, "output_tokens": 2, "cache_read_input_tokens": 4})
    reported = read_reported({"input_tokens": 9, "output_tokens": 2, "cache_read_input_tokens": 4})
    assert reported is not None and (reported.prompt, reported.completion, reported.cached) == (9, 2, 4)
    reported = read_reported({"prompt_tokens": 9, "completion_tokens": 2, "prompt_cache_hit_tokens": 3})
    assert reported is not None and reported.cached == 3


def test_an_unbelievable_report_is_invalid_whole() -> None:
    """SPEC §3: a report not made of non-negative integers below 2^53 is ignored (and marked)."""
    assert read_reported(None) is None
    for junk in (
        [1],
        "garbage",
        7,
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": 10, "completion_tokens": "3"},
        {"prompt_tokens": 1e30, "completion_tokens": 5},
        {"prompt_tokens": 3.0, "completion_tokens": 5},
        {"prompt_tokens": 2**53, "completion_tokens": 5},
        {"prompt_tokens": True, "completion_tokens": 5},
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": -15},
        {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": 5},
        {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2.5}},
        {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"audio_tokens": -1}},
        {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 1e20},
    ):
        assert read_reported(junk) == INVALID, junk
    edge = read_reported({"prompt_tokens": 2**53 - 1, "completion_tokens": 0, "prompt_tokens_details": None})
    assert edge is not None and not edge.invalid and edge.prompt == 2**53 - 1
    # Labels in the details are not token counts, and other top-level fields (a provider's own cost) pass.
    labelled = read_reported(
        {"prompt_tokens": 4, "completion_tokens": 2, "cost": 0.0012, "prompt_tokens_details": {"tier": "x"}}
    )
    assert labelled is not None and not labelled.invalid and (labelled.prompt, labelled.completion) == (4, 2)


def test_to_openai_fills_every_field_and_keeps_extras() -> None:
    usage = Usage(
        prompt=100,
        completion=20,
        cached=30,
        cache_write=7,
        reasoning=5,
        raw={"prompt_tokens_details": {"audio_tokens": 2}, "completion_tokens_details": {"audio_tokens": 1}},
    )
    assert to_openai(usage, Decimal("0.000123")) == {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {
            "audio_tokens": 2,
            "cached_tokens": 30,
            "cache_write_tokens": 7,
            "cache_creation_tokens": 7,
        },
        "completion_tokens_details": {"audio_tokens": 1, "reasoning_tokens": 5},
        "cost": Decimal("0.000123"),
    }
