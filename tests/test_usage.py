from decimal import Decimal

from tollway.usage import Usage, read_reported, to_openai


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


def test_junk_is_ignored() -> None:
    assert read_reported(None) is None
    assert read_reported([1]) is None
    reported = read_reported({"prompt_tokens": -1, "completion_tokens": "3", "prompt_tokens_details": 5})
    assert reported is not None and (reported.prompt, reported.completion, reported.cached) == (
        None,
        None,
        None,
    )
    reported = read_reported({"prompt_tokens": 4.0, "completion_tokens": True})
    assert reported is not None and (reported.prompt, reported.completion) == (4, None)


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
