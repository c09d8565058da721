"""`Metrics`: the families, their labels, exact values, and apps in one process kept apart."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from tollway.observe.metrics import TOKEN_CLASSES, Metrics, _counting, _observing
from tollway.usage import Usage


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_requests_are_counted_by_surface_model_and_status_and_timed_by_surface() -> None:
    metrics = Metrics()
    metrics.request("chat.completions", "gpt-4o-mini", 200, 0.02)
    metrics.request("chat.completions", "gpt-4o-mini", 200, 0.2)
    metrics.request("chat.completions", "", 401, 0.001)
    metrics.request("embeddings", "emb", 402, 0.003)
    found = samples(metrics)
    count = "tollway_requests_total"
    assert found[(count, (("model", "gpt-4o-mini"), ("status", "200"), ("surface", "chat.completions")))] == 2
    assert found[(count, (("model", ""), ("status", "401"), ("surface", "chat.completions")))] == 1
    assert found[(count, (("model", "emb"), ("status", "402"), ("surface", "embeddings")))] == 1
    duration = "tollway_request_duration_seconds"
    assert found[(f"{duration}_count", (("surface", "chat.completions"),))] == 3
    assert found[(f"{duration}_bucket", (("le", "0.025"), ("surface", "chat.completions")))] == 2
    assert found[(f"{duration}_bucket", (("le", "+Inf"), ("surface", "embeddings")))] == 1


def test_tokens_and_cost_are_exactly_the_usage_billed() -> None:
    metrics = Metrics()
    metrics.usage("m", Usage(prompt=100, completion=40, cached=30, cache_write=20, reasoning=10), 123_456_789)
    metrics.usage("m", Usage(prompt=7, completion=3), 9_000_000_000_001)
    found = samples(metrics)
    tokens = {
        kind: found[("tollway_tokens_total", (("class", kind), ("model", "m")))] for kind in TOKEN_CLASSES
    }
    assert tokens == {"prompt": 107, "cached": 30, "cache_write": 20, "completion": 43, "reasoning": 10}
    # Whole nano-dollars, exact (a float holds integers exactly up to 2**53).
    assert found[("tollway_cost_nanodollars_total", (("model", "m"),))] == 9_000_123_456_790


def test_gauges_go_up_and_down() -> None:
    metrics = Metrics()
    metrics.hold_opened()
    metrics.hold_opened()
    metrics.hold_closed()
    streams = metrics.stream_gauge("responses")
    assert metrics.stream_gauge("responses") is streams  # cached
    streams.inc()
    found = samples(metrics)
    assert found[("tollway_reservations_held", ())] == 1
    assert found[("tollway_open_streams", (("surface", "responses"),))] == 1
    streams.dec()
    assert samples(metrics)[("tollway_open_streams", (("surface", "responses"),))] == 0


def test_upstream_errors_and_ledger_commits() -> None:
    metrics = Metrics()
    metrics.upstream_error("a", "connect")
    metrics.upstream_error("a", "connect")
    metrics.upstream_error("b", "stream_broken")
    metrics.ledger_commit("reserve", 0.0007)
    metrics.ledger_commit("write", 0.003)
    found = samples(metrics)
    assert found[("tollway_upstream_errors_total", (("kind", "connect"), ("upstream", "a")))] == 2
    assert found[("tollway_upstream_errors_total", (("kind", "stream_broken"), ("upstream", "b")))] == 1
    commit = "tollway_ledger_commit_seconds"
    assert found[(f"{commit}_count", (("operation", "reserve"),))] == 1
    assert found[(f"{commit}_bucket", (("le", "0.001"), ("operation", "reserve")))] == 1
    assert found[(f"{commit}_bucket", (("le", "0.001"), ("operation", "write")))] == 0


def test_two_instances_in_one_process_never_share_a_count() -> None:
    one, two = Metrics(), Metrics()
    assert not one.multiprocess  # the test process has no PROMETHEUS_MULTIPROC_DIR
    one.request("chat.completions", "m", 200, 0.01)
    one.hold_opened()
    found = samples(two)
    assert not any(name == "tollway_requests_total" for name, _ in found)
    assert found[("tollway_reservations_held", ())] == 0
    assert samples(one)[("tollway_reservations_held", ())] == 1


_BOUNDS = (0.005, 0.01, 0.25, 1, 60)


def _histogram_samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


@settings(max_examples=200, print_blob=True)
@given(
    amounts=st.lists(
        st.one_of(st.sampled_from(_BOUNDS), st.floats(0, 100, allow_nan=False), st.just(1e9)), max_size=30
    )
)
def test_observing_directly_counts_what_histogram_observe_counts(amounts: list[float]) -> None:
    direct, public = CollectorRegistry(), CollectorRegistry()
    fast = _observing(Histogram("h", "h", ("l",), buckets=_BOUNDS, registry=direct).labels("a"))
    slow = Histogram("h", "h", ("l",), buckets=_BOUNDS, registry=public).labels("a")
    for amount in amounts:
        fast(amount)
        slow.observe(amount)
    assert _histogram_samples(direct) == _histogram_samples(public)


def test_counting_directly_adds_to_the_child_and_falls_back_to_the_public_method() -> None:
    registry = CollectorRegistry()
    child = Counter("c", "c", ("l",), registry=registry).labels("a")
    _counting(child)(3)
    _counting(child)(1)
    assert registry.get_sample_value("c_total", {"l": "a"}) == 4

    class Plain:
        def __init__(self) -> None:
            self.added: list[float] = []

        def inc(self, amount: float = 1) -> None:
            self.added.append(amount)

    plain = Plain()
    _counting(plain)(2)  # type: ignore[arg-type]
    assert plain.added == [2]
