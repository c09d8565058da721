from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.usage import INVALID, ReportedUsage, Usage, read_reported, to_openai


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
        {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": "5"}},
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "completion_tokens_details": {"reasoning_tokens": "abc"},
        },
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
        cache_write_1h=4,
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
            "cache_write_1h_tokens": 4,
        },
        "completion_tokens_details": {"audio_tokens": 1, "reasoning_tokens": 5},
        "cost": Decimal("0.000123"),
    }
    assert to_openai(Usage(prompt=1, completion=1))["prompt_tokens_details"]["cache_write_1h_tokens"] == 0


ANTHROPIC = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_read_input_tokens": 3,
    "cache_creation_input_tokens": 12,
    "cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 8},
}


def test_anthropic_cache_creation_by_lifetime() -> None:
    """1-hour writes are a part of the cache writes: `cache_creation_input_tokens` is the sum."""
    reported = read_reported(ANTHROPIC)
    assert reported is not None and not reported.invalid
    assert (reported.cached, reported.cache_write, reported.cache_write_1h) == (3, 12, 8)
    # Without the object (older API versions, or 5-minute writes only) there are no 1-hour writes.
    plain = read_reported({k: v for k, v in ANTHROPIC.items() if k != "cache_creation"})
    assert plain is not None and (plain.cache_write, plain.cache_write_1h) == (12, None)
    only_5m = read_reported(ANTHROPIC | {"cache_creation": {"ephemeral_5m_input_tokens": 12}})
    assert only_5m is not None and (only_5m.cache_write, only_5m.cache_write_1h) == (12, None)
    # With the object but no total, the total is the sum of the parts.
    no_total = read_reported({k: v for k, v in ANTHROPIC.items() if k != "cache_creation_input_tokens"})
    assert no_total is not None and (no_total.cache_write, no_total.cache_write_1h) == (12, 8)
    # tollway's own OpenAI-shaped report (a tollway upstream) reads back the same.
    chained = read_reported(
        {
            "prompt_tokens": 25,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cache_write_tokens": 12, "cache_write_1h_tokens": 8},
        }
    )
    assert chained is not None and (chained.cache_write, chained.cache_write_1h) == (12, 8)
    # Other reports are unchanged.
    other = read_reported({"prompt_tokens": 1, "completion_tokens": 1})
    assert other is not None and other.cache_write_1h is None


def test_invalid_1h_cache_writes_make_the_report_invalid() -> None:
    for creation in (
        5,
        "8",
        [8],
        {"ephemeral_1h_input_tokens": -1},
        {"ephemeral_1h_input_tokens": 8.0},
        {"ephemeral_1h_input_tokens": "8"},
        {"ephemeral_1h_input_tokens": True},
        {"ephemeral_1h_input_tokens": 2**53},
        {"ephemeral_5m_input_tokens": "4", "ephemeral_1h_input_tokens": 8},
        {"ephemeral_5m_input_tokens": 1e20},
    ):
        assert read_reported(ANTHROPIC | {"cache_creation": creation}) == INVALID, creation
    for details in (
        {"cache_write_1h_tokens": "8"},
        {"cache_write_1h_tokens": -8},
        {"cache_write_1h_tokens": 0.5},
    ):
        usage = {"prompt_tokens": 25, "completion_tokens": 5, "prompt_tokens_details": details}
        assert read_reported(usage) == INVALID, details
    # null is "not reported", as for the other counts.
    null = read_reported(ANTHROPIC | {"cache_creation": {"ephemeral_1h_input_tokens": None}})
    assert null is not None and not null.invalid and null.cache_write_1h is None
    absent = read_reported(ANTHROPIC | {"cache_creation": None})
    assert absent is not None and not absent.invalid
    assert (absent.cache_write, absent.cache_write_1h) == (12, None)


# The rules of SPEC §3 as plainly as they can be written: every field looked up by name, in order.
# `read_reported` goes over the fields a report has instead; the two must agree on every report.
# The field lists are the test's own on purpose (not imported): a field dropped from tollway.usage fails it.
_TOP = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_tokens",
    "cache_write_tokens",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "reasoning_tokens",
)
_SECTIONS = (
    "prompt_tokens_details",
    "completion_tokens_details",
    "input_tokens_details",
    "output_tokens_details",
    "cache_creation",
)
_READ = (
    "cached_tokens",
    "cache_write_tokens",
    "cache_creation_tokens",
    "cache_creation_input_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)
_LIFETIMES = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 2**53 - 1


def _by_the_rules(usage: dict[str, Any]) -> ReportedUsage:
    for name in _TOP:
        if usage.get(name) is not None and not _count(usage[name]):
            return INVALID
    for name in _SECTIONS:
        section = usage.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            return INVALID
        for key, value in section.items():
            must_count = key in _READ or (name == "cache_creation" and key in _LIFETIMES)
            if value is not None and (must_count or isinstance(value, int | float)) and not _count(value):
                return INVALID

    def first(*values: Any) -> int | None:
        return next((int(v) for v in values if v is not None), None)

    def details(*names: str) -> dict[str, Any]:
        return next((d for n in names if isinstance(d := usage.get(n), dict) and d), {})

    prompt, completion = (
        details("prompt_tokens_details", "input_tokens_details"),
        details("completion_tokens_details", "output_tokens_details"),
    )
    creation = details("cache_creation")
    parts = [creation[n] for n in _LIFETIMES if creation.get(n) is not None]
    return ReportedUsage(
        prompt=first(usage.get("prompt_tokens"), usage.get("input_tokens")),
        completion=first(usage.get("completion_tokens"), usage.get("output_tokens")),
        cached=first(
            prompt.get("cached_tokens"),
            usage.get("cache_read_input_tokens"),
            usage.get("prompt_cache_hit_tokens"),
        ),
        cache_write=first(
            *(
                prompt.get(n)
                for n in ("cache_write_tokens", "cache_creation_tokens", "cache_creation_input_tokens")
            ),
            *(
                usage.get(n)
                for n in ("cache_creation_input_tokens", "cache_creation_tokens", "cache_write_tokens")
            ),
            sum(parts) if parts else None,
        ),
        reasoning=first(completion.get("reasoning_tokens"), usage.get("reasoning_tokens")),
        raw=usage,
        cache_write_1h=first(prompt.get("cache_write_1h_tokens"), creation.get("ephemeral_1h_input_tokens")),
    )


_VALUES = st.one_of(
    st.integers(0, 10**6),
    st.sampled_from([-1, 2**53 - 1, 2**53, 0.0, 2.5, True, False, "7", None, [3], {"x": 1}]),
)
_DETAIL_NAMES = st.sampled_from([*_READ, *_LIFETIMES, "audio_tokens", "tier"])
_REPORTS = st.dictionaries(
    st.sampled_from([*_TOP, "cost", "model"]), _VALUES, max_size=8
) | st.fixed_dictionaries(
    {},
    optional={
        **{name: _VALUES for name in _TOP[:6]},
        **{name: st.dictionaries(_DETAIL_NAMES, _VALUES, max_size=5) | _VALUES for name in _SECTIONS},
    },
)


@settings(max_examples=600, print_blob=True)
@given(_REPORTS)
def test_reading_a_report_follows_the_rules_field_by_field(usage: dict[str, Any]) -> None:
    assert read_reported(usage) == _by_the_rules(usage), usage
