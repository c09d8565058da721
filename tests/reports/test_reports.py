"""Reports against a real SQLite ledger: every total equals the sum of the records, exactly."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dbs import drop_database, new_database_url
from tollway.accounts import AccountStore
from tollway.clock import iso
from tollway.db import create_engine, upgrade
from tollway.errors import InvalidRequest, NotFound
from tollway.ledger import Draft, Ledger, UsageRecord
from tollway.ledger.verify import verify_ledger
from tollway.reports.service import Reports

DAY = 86_400_000_000
T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) * 1_000_000  # a UTC midnight
MODELS = ("gpt-4o", "gpt-4o-mini")


def record(i: int, workspace: str, key: str, model: str, at: int, rng: random.Random) -> UsageRecord:
    prompt = rng.randint(1, 5000)
    completion = rng.randint(0, 2000)
    cached = rng.randint(0, prompt // 2)
    cache_write = rng.randint(0, prompt - cached)
    return UsageRecord(
        id=f"req_{i:06d}",
        workspace_id=workspace,
        key_id=key,
        model=model,
        upstream="up",
        price_id="p",
        stream=bool(i % 2),
        end_state="completed",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_write_tokens=cache_write,
        reasoning_tokens=rng.randint(0, completion),
        prompt_source="upstream",
        completion_source="upstream",
        estimated=False,
        rates="{}",
        cost_nano=rng.randint(0, 10**7),
        started_at=at - 1000,
        finished_at=at,
        cache_write_1h_tokens=rng.randint(0, cache_write),
    )


async def bill(ledger: Ledger, rec: UsageRecord) -> None:
    """What the biller writes for one request: reserve, then usage record + debit."""
    async with ledger.write(rec.workspace_id) as writer:
        await writer.append(
            Draft(
                workspace_id=rec.workspace_id,
                kind="reserve",
                hold_nano=10**7,
                key_id=rec.key_id,
                reservation_id=rec.id,
            )
        )
    async with ledger.write(rec.workspace_id) as writer:
        await writer.record_usage(rec)
        await writer.append(
            Draft(
                workspace_id=rec.workspace_id,
                kind="debit",
                amount_nano=-rec.cost_nano,
                hold_nano=-(10**7),
                key_id=rec.key_id,
                reservation_id=rec.id,
            )
        )


class World:
    def __init__(
        self,
        engine: AsyncEngine,
        workspaces: list[str],
        keys: dict[str, list[str]],
        records: list[UsageRecord],
    ) -> None:
        self.engine = engine
        self.workspaces = workspaces
        self.keys = keys
        self.records = records
        self.reports = Reports(engine, max_range_days=366)


@pytest.fixture(name="loop", scope="module")
def fixture_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(name="world", scope="module")
def fixture_world(
    tmp_path_factory: pytest.TempPathFactory, loop: asyncio.AbstractEventLoop
) -> Iterator[World]:
    url = new_database_url(tmp_path_factory.mktemp("reports"))
    rng = random.Random(7)
    print("seed=7")

    async def build() -> World:
        engine = create_engine(url)
        await upgrade(engine)
        store, ledger = AccountStore(engine), Ledger(engine)
        workspaces, keys, records = [], {}, []
        for name in ("a", "b"):
            ws = await store.create_workspace(name)
            workspaces.append(ws.id)
            keys[ws.id] = [(await store.create_key(ws.id, f"k{j}", None, "total")).key.id for j in range(2)]
            async with ledger.write(ws.id) as writer:
                await writer.append(Draft(workspace_id=ws.id, kind="credit", amount_nano=10**15))
        for i in range(240):
            ws = workspaces[i % 2]
            # spread over four days, with records right on and either side of each midnight
            at = T0 + rng.choice([rng.randint(0, 4 * DAY - 1), (i % 4) * DAY, (i % 4 + 1) * DAY - 1])
            rec = record(i, ws, rng.choice(keys[ws]), rng.choice(MODELS), at, rng)
            records.append(rec)
            await bill(ledger, rec)
        return World(engine, workspaces, keys, records)

    world = loop.run_until_complete(build())
    yield world
    loop.run_until_complete(world.engine.dispose())
    drop_database(url)


def brute(
    world: World, ws: str | None, lo: int, hi: int, model: str | None = None, key: str | None = None
) -> dict[tuple[str, ...], list[int]]:
    groups: dict[tuple[str, ...], list[int]] = {}
    for r in world.records:
        if (
            (ws is None or r.workspace_id == ws)
            and lo <= r.finished_at < hi
            and model in (None, r.model)
            and key in (None, r.key_id)
        ):
            group = (r.model,) if ws is not None else (r.workspace_id, r.model)
            sums = groups.setdefault(group, [0] * 8)
            for n, value in enumerate(
                (
                    1,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.cached_tokens,
                    r.cache_write_tokens,
                    r.cache_write_1h_tokens,
                    r.reasoning_tokens,
                    r.cost_nano,
                )
            ):
                sums[n] += value
    return groups


def as_sums(row: dict[str, object]) -> list[int]:
    cost = str(row["cost_usd"]).replace(".", "")
    return [
        int(row[k])
        for k in (
            "calls",
            "input_tokens",
            "output_tokens",
            "cached_tokens",  # type: ignore[call-overload]
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
        )
    ] + [int(cost)]


@settings(max_examples=60, deadline=None)
@given(
    lo=st.integers(-DAY, 5 * DAY),
    length=st.integers(0, 5 * DAY),
    which=st.integers(0, 2),
    model=st.sampled_from([None, *MODELS]),
)
def test_summary_equals_the_records(
    world: World, loop: asyncio.AbstractEventLoop, lo: int, length: int, which: int, model: str | None
) -> None:
    ws = None if which == 2 else world.workspaces[which]
    frm, to = T0 + lo, T0 + lo + length
    query = {"from": iso(frm), "to": iso(to)} | ({"model": model} if model else {})
    report = loop.run_until_complete(world.reports.summary(ws, query, "/v1/usage"))
    names = ("model",) if ws is not None else ("workspace_id", "model")
    got = {tuple(str(row[n]) for n in names): as_sums(row) for row in report["breakdown"]}
    expected = brute(world, ws, frm, to, model)
    assert got == expected
    assert as_sums(report["totals"]) == [sum(v[n] for v in expected.values()) for n in range(8)]


def test_whole_days_and_day_boundaries(world: World, loop: asyncio.AbstractEventLoop) -> None:
    ws = world.workspaces[0]
    for lo, hi in ((0, DAY), (DAY - 1, DAY + 1), (DAY, 3 * DAY), (0, 4 * DAY), (3, 3)):
        query = {"from": iso(T0 + lo), "to": iso(T0 + hi)}
        report = loop.run_until_complete(world.reports.summary(ws, query, "/v1/usage"))
        expected = brute(world, ws, T0 + lo, T0 + hi)
        assert as_sums(report["totals"]) == [sum(v[n] for v in expected.values()) for n in range(8)]


def test_key_filter_and_isolation(world: World, loop: asyncio.AbstractEventLoop) -> None:
    a, b = world.workspaces
    key = world.keys[a][0]
    query = {"from": iso(T0), "to": iso(T0 + 4 * DAY), "key_id": key}
    report = loop.run_until_complete(world.reports.summary(a, query, "/v1/usage"))
    expected = brute(world, a, T0, T0 + 4 * DAY, key=key)
    assert as_sums(report["totals"]) == [sum(v[n] for v in expected.values()) for n in range(8)]
    # another workspace's key filters to nothing, never to the other workspace's data
    other = loop.run_until_complete(world.reports.summary(b, query, "/v1/usage"))
    assert other["totals"]["calls"] == 0 and other["breakdown"] == []
    theirs = next(r for r in world.records if r.workspace_id == a)
    with pytest.raises(NotFound):
        loop.run_until_complete(world.reports.request(b, theirs.id))
    assert loop.run_until_complete(world.reports.request(a, theirs.id))["id"] == theirs.id


def test_report_totals_equal_the_ledger_debits(world: World, loop: asyncio.AbstractEventLoop) -> None:
    assert loop.run_until_complete(verify_ledger(world.engine)).ok
    for ws in world.workspaces:
        report = loop.run_until_complete(
            world.reports.summary(ws, {"from": iso(T0 - DAY), "to": iso(T0 + 5 * DAY)}, "/v1/usage")
        )
        entries = loop.run_until_complete(Ledger(world.engine).entries(ws, 10_000))
        debited = -sum(e.amount_nano for e in entries if e.kind == "debit")
        assert int(report["totals"]["cost_usd"].replace(".", "")) == debited


def test_log_pages_every_record_once_while_records_arrive(
    world: World, loop: asyncio.AbstractEventLoop
) -> None:
    ws = world.workspaces[1]
    before = {r.id for r in world.records if r.workspace_id == ws}
    seen: list[str] = []
    cursor = None
    rng = random.Random(11)
    extra = 0
    while True:
        query = {"limit": "7"} | ({"cursor": cursor} if cursor else {})
        page = loop.run_until_complete(world.reports.log(ws, query))
        seen += [row["id"] for row in page["data"]]
        # new requests land between pages, newer than everything paged so far
        rec = record(10_000 + extra, ws, world.keys[ws][0], MODELS[0], T0 + 6 * DAY + extra, rng)
        extra += 1
        loop.run_until_complete(bill(Ledger(world.engine), rec))
        world.records.append(rec)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert before <= set(seen)
    at = {r.id: r.finished_at for r in world.records}
    times = [at[request_id] for request_id in seen]
    assert times == sorted(times, reverse=True)  # newest first, across pages too


def test_daily_is_zero_filled_and_sums_to_the_stats(world: World, loop: asyncio.AbstractEventLoop) -> None:
    ws = world.workspaces[0]
    daily = loop.run_until_complete(world.reports.daily(ws, {"days": "5"}))
    assert len(daily["data"]) == 5 and daily["period_days"] == 5
    dates = [row["date"] for row in daily["data"]]
    assert dates == sorted(dates)
    stats = loop.run_until_complete(world.reports.stats(ws, {"days": "5"}))
    assert sum(r["call_count"] for r in daily["data"]) == sum(r["call_count"] for r in stats["stats"])
    for name in ("total_cache_write_tokens", "total_cache_write_1h_tokens"):
        assert sum(r[name] for r in daily["data"]) == sum(r[name] for r in stats["stats"])


def test_record_view_and_log_show_1h_cache_writes(world: World, loop: asyncio.AbstractEventLoop) -> None:
    rec = next(r for r in world.records if r.cache_write_1h_tokens > 0)
    view = loop.run_until_complete(world.reports.request(rec.workspace_id, rec.id))
    assert view["tokens"]["cache_write"] == rec.cache_write_tokens
    assert view["tokens"]["cache_write_1h"] == rec.cache_write_1h_tokens
    page = loop.run_until_complete(world.reports.log(rec.workspace_id, {"limit": "100"}))
    rows = {row["id"]: row for row in page["data"]}
    if rec.id in rows:
        assert rows[rec.id]["cache_write_1h_tokens"] == rec.cache_write_1h_tokens


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from"),
        ({"model": ""}, "model"),
        ({"from": "0001-01-01"}, "from"),
    ],
)
def test_bad_periods(
    world: World, loop: asyncio.AbstractEventLoop, query: dict[str, str], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        loop.run_until_complete(world.reports.summary(world.workspaces[0], query, "/v1/usage"))
    assert info.value.param == param


@pytest.mark.parametrize(
    ("route", "query", "param"),
    [
        ("daily", {"days": "0"}, "days"),
        ("daily", {"days": "367"}, "days"),
        ("stats", {"days": "-1"}, "days"),
        ("log", {"limit": "0"}, "limit"),
        ("log", {"limit": "1000"}, "limit"),
        ("log", {"cursor": "bm9wZQ"}, "cursor"),
        ("log", {"cursor": "%%%"}, "cursor"),
    ],
)
def test_bad_paging(
    world: World, loop: asyncio.AbstractEventLoop, route: str, query: dict[str, str], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        loop.run_until_complete(getattr(world.reports, route)(world.workspaces[0], query))
    assert info.value.param == param
