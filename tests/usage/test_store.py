"""The store contract, run against SQLite and (when reachable) PostgreSQL alike.

Aggregates are checked against a plain-Python oracle over the same records, so each
case states what it groups or filters and the oracle says what the answer must be.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.usage.money import as_utc, quantize_cost
from gateway.usage.postgres import PostgresUsageStore
from gateway.usage.record import UsageRecord
from gateway.usage.sqlite import SQLiteUsageStore, _chunk_sizes
from gateway.usage.store import GROUP_FIELDS, UsageStore, open_store
from tests.usage.conftest import Backend
from tests.usage.helpers import make_record

DAY1 = datetime(2026, 11, 1, tzinfo=UTC)


def _dataset() -> list[UsageRecord]:
    """Records across keys, teams, users, models and three UTC days, some unpriced."""
    rng = random.Random(7)
    records = []
    for i in range(90):
        key = ("app1", "app2", "app3")[i % 3]
        records.append(
            make_record(
                ts=DAY1 + timedelta(hours=rng.randrange(0, 72), seconds=rng.randrange(3600)),
                key_id=key,
                team={"app1": "search", "app2": "ads", "app3": None}[key],
                user=("alice", "bob", None)[i % 3 if i % 2 else (i + 1) % 3],
                end_user=(None, "customer-1", "customer-2")[i % 3] if i % 5 else None,
                model=("claude-3-5-haiku", "nova-lite")[i % 2],
                route=("/v1/chat/completions", "/v1/embeddings")[i % 7 == 0],
                status=(200, 200, 429, 400)[i % 4],
                input_tokens=rng.randrange(1, 5000),
                output_tokens=rng.randrange(0, 2000),
                cache_read_tokens=rng.randrange(0, 300),
                cache_write_tokens=(writes := rng.randrange(0, 100)),
                cache_write_1h_tokens=rng.randrange(0, writes + 1) if i % 4 == 0 else 0,
                service_tier=(None, "default", "flex", "priority")[i % 4],
                region=(None, "us-east-1", "us-west-2")[i % 3],
                guardrail_id=(None, "abc123def456", None, "search0guard1")[i % 4],
                cost_usd=None
                if i % 11 == 0
                else quantize_cost(Decimal(rng.randrange(10**9)) / 10**13),
            )
        )
    # Late evening in New York on Nov 1 is already Nov 2 in UTC: "day" is the UTC date.
    records.append(
        make_record(ts=datetime(2026, 11, 1, 21, 30, tzinfo=timezone(timedelta(hours=-5))))
    )
    # A group in which nobody had a price.
    records.append(make_record(key_id="app4", team="lab", model="mystery", cost_usd=None))
    return records


def _oracle(
    records: Sequence[UsageRecord],
    group_by: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    key_id: str | None = None,
) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        ts = as_utc(record.ts)
        if (start and ts < start) or (end and ts >= end) or (key_id and record.key_id != key_id):
            continue
        key = tuple(
            ts.strftime("%Y-%m-%d") if name == "day" else getattr(record, name) for name in group_by
        )
        row = groups.setdefault(
            key,
            {
                **dict(zip(group_by, key, strict=True)),
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "cache_write_1h_tokens": 0,
                "cost_usd": None,
            },
        )
        row["requests"] += 1
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
        ):
            row[name] += getattr(record, name)
        if record.cost_usd is not None:
            row["cost_usd"] = (row["cost_usd"] or Decimal(0)) + record.cost_usd
    return sorted(
        groups.values(), key=lambda r: tuple((r[f] is None, r[f] or "") for f in group_by)
    )


GROUPINGS = [
    (),
    *[(name,) for name in GROUP_FIELDS],
    ("team", "model"),
    ("key_id", "day"),
    ("day", "user", "end_user"),
    ("route", "status"),
    ("model", "team", "key_id", "user", "end_user", "day"),
    ("team", "service_tier"),
    ("model", "region"),
    ("team", "guardrail_id", "region"),
]


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: ",".join(g) or "total")
async def test_query_groups_like_the_oracle(store: UsageStore, group_by: tuple[str, ...]) -> None:
    records = _dataset()
    await store.write(records)
    assert await store.query(group_by=group_by) == _oracle(records, group_by)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (DAY1 + timedelta(days=1), None),
        (None, DAY1 + timedelta(days=1)),
        (DAY1 + timedelta(hours=12), DAY1 + timedelta(hours=36)),
        (DAY1 + timedelta(days=5), None),
    ],
)
async def test_time_range_is_half_open(
    store: UsageStore, start: datetime | None, end: datetime | None
) -> None:
    records = _dataset()
    await store.write(records)
    got = await store.query(group_by=["day", "key_id"], start=start, end=end)
    assert got == _oracle(records, ["day", "key_id"], start=start, end=end)


async def test_range_bounds_at_the_exact_instant(store: UsageStore) -> None:
    at = datetime(2026, 11, 3, 8, 0, 0, 250000, tzinfo=UTC)
    await store.write([make_record(ts=at)])
    assert len(await store.query(group_by=[], start=at, end=at + timedelta(microseconds=1))) == 1
    assert await store.query(group_by=[], start=at + timedelta(microseconds=1)) == []
    assert await store.query(group_by=[], end=at) == []
    # A naive bound is UTC; an aware one in another zone means the same instant.
    assert len(await store.query(group_by=[], start=at.replace(tzinfo=None))) == 1
    tokyo = at.astimezone(timezone(timedelta(hours=9)))
    assert len(await store.query(group_by=[], start=tokyo)) == 1


async def test_key_restriction_only_sees_that_key(store: UsageStore) -> None:
    records = _dataset()
    await store.write(records)
    got = await store.query(group_by=["key_id", "model"], key_id="app2")
    assert got == _oracle(records, ["key_id", "model"], key_id="app2")
    assert {row["key_id"] for row in got} == {"app2"}
    assert await store.query(group_by=["team"], key_id="nobody") == []


async def test_rewriting_the_same_ids_counts_once(store: UsageStore) -> None:
    records = [make_record(input_tokens=100) for _ in range(20)]
    await store.write(records)
    await store.write(records)  # a retried batch
    await store.write([*records[5:15], make_record(input_tokens=1)])  # overlapping batch
    # Same id, different numbers: the first write stands, nothing is double-counted.
    await store.write([make_record(id=records[0].id, input_tokens=10**6)])
    (row,) = await store.query(group_by=[])
    assert row["requests"] == 21
    assert row["input_tokens"] == 20 * 100 + 1


async def test_costs_sum_exactly(store: UsageStore) -> None:
    await store.write(
        [make_record(cost_usd=Decimal("0.0000003"), key_id="tiny") for _ in range(10_000)]
    )
    await store.write(
        [make_record(cost_usd=Decimal("0.0000000001"), key_id="tinier") for _ in range(777)]
    )
    rows = {row["key_id"]: row for row in await store.query(group_by=["key_id"])}
    assert rows["tiny"]["cost_usd"] == Decimal("0.003")
    assert rows["tinier"]["cost_usd"] == Decimal("0.0000000777")
    assert isinstance(rows["tiny"]["cost_usd"], Decimal)


async def test_unknown_costs_stay_unknown(store: UsageStore) -> None:
    await store.write(
        [
            make_record(team="priced", cost_usd=Decimal("0.5")),
            make_record(team="priced", cost_usd=None),
            make_record(team="unpriced", cost_usd=None),
        ]
    )
    rows = {row["team"]: row for row in await store.query(group_by=["team"])}
    assert rows["priced"]["cost_usd"] == Decimal("0.5")
    assert rows["priced"]["requests"] == 2
    assert rows["unpriced"]["cost_usd"] is None


async def test_fields_are_stored_as_given(store: UsageStore, backend: Backend) -> None:
    record = make_record(
        ts=datetime(2026, 11, 5, 23, 59, 59, 999999, tzinfo=UTC),
        end_user="user@example.com",
        stream=True,
        status=502,
        ttft_ms=None,
        estimated=True,
        error_type="ThrottlingException",
        cost_usd=Decimal("1.2345678901"),
    )
    await store.write([record])
    raw = await backend.raw_row(record.id)
    assert raw["request_id"] == record.request_id
    assert raw["end_user"] == "user@example.com"
    assert bool(raw["stream"]) is True
    assert bool(raw["estimated"]) is True
    assert raw["status"] == 502
    assert raw["ttft_ms"] is None
    assert raw["error_type"] == "ThrottlingException"
    if backend.kind == "sqlite":
        assert raw["ts"] == "2026-11-05 23:59:59.999999"
        assert raw["cost_e10"] == 12345678901
    else:
        assert raw["ts"] == record.ts
        assert raw["cost_usd"] == Decimal("1.2345678901")


async def test_spend(store: UsageStore) -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    await store.write(
        [
            make_record(key_id="a", team="t1", cost_usd=Decimal("1.25")),
            make_record(key_id="a", team="t1", cost_usd=None),
            make_record(key_id="b", team="t1", cost_usd=Decimal("0.0000000001")),
            make_record(key_id="c", team="t2", cost_usd=Decimal("2")),
            make_record(
                key_id="a", team="t1", cost_usd=Decimal("100"), ts=since - timedelta(seconds=1)
            ),
        ]
    )
    assert await store.spend(key_id="a", since=since) == Decimal("1.25")
    assert await store.spend(team="t1", since=since) == Decimal("1.2500000001")
    assert await store.spend(key_id="b", team="t2", since=since) == Decimal(0)
    assert await store.spend(since=since) == Decimal("3.2500000001")
    assert await store.spend(key_id="a", since=since - timedelta(days=1)) == Decimal("101.25")
    assert await store.spend(key_id="nobody", since=since) == Decimal(0)


@pytest.mark.parametrize(
    "bad",
    [["team; DROP TABLE usage_records"], ["ts"], ["cost_usd"], ["team", "team"], ['"user"']],
)
async def test_group_by_names_are_an_allow_list(store: UsageStore, bad: list[str]) -> None:
    await store.write([make_record()])
    with pytest.raises(ValueError):
        await store.query(group_by=bad)
    assert (await store.query(group_by=[]))[0]["requests"] == 1


async def test_migrations_apply_once_and_reopening_keeps_the_data(backend: Backend) -> None:
    first = await backend.open()
    await first.write([make_record(id="kept")])
    await first.close()
    second = await backend.open()
    (row,) = await second.query(group_by=["key_id"])
    assert row["requests"] == 1
    assert await backend.versions() == [1, 2, 3, 4]


async def test_gateways_starting_together_migrate_once(backend: Backend) -> None:
    stores = [backend.new() for _ in range(4)]
    backend.opened.extend(stores)
    await asyncio.gather(*(s.open() for s in stores))
    assert await backend.versions() == [1, 2, 3, 4]
    for s in stores:
        await s.ping()


async def test_concurrent_writers_lose_nothing(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(4)]
    shared = [make_record(key_id="shared", input_tokens=3) for _ in range(50)]

    async def writer(store: UsageStore, n: int) -> None:
        for batch in range(10):
            own = [make_record(key_id=f"w{n}", input_tokens=1) for _ in range(50)]
            # Every writer also sends the shared records: as a fleet retrying would.
            await store.write(own + shared[batch * 5 : batch * 5 + 5])

    await asyncio.gather(*(writer(s, n) for n, s in enumerate(stores)))
    rows = {row["key_id"]: row for row in await stores[0].query(group_by=["key_id"])}
    assert {k: r["requests"] for k, r in rows.items()} == {
        "shared": 50,
        "w0": 500,
        "w1": 500,
        "w2": 500,
        "w3": 500,
    }
    assert rows["shared"]["input_tokens"] == 150


async def test_ping_and_closed_store(backend: Backend) -> None:
    store = await backend.open()
    await store.ping()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.ping()
    with pytest.raises(RuntimeError):
        await store.write([make_record()])
    await store.close()  # twice is fine


async def test_empty_write_is_a_no_op(store: UsageStore) -> None:
    await store.write([])
    assert await store.query(group_by=["team"]) == []


async def test_sqlite_writes_a_batch_in_a_few_statements(tmp_path: Path) -> None:
    """A batch goes down as a few multi-row INSERTs, not one statement per record.

    The writes run on a thread, and sqlite3 lets go of the GIL around every statement it
    steps. With one statement per record, a busy event loop held the thread up once per
    row (up to the 5 ms switch interval each): under load the ledger wrote about 1,000
    rows/s while 1,600 requests/s were answered, and the queue grew until it spilled.
    """
    store = SQLiteUsageStore(tmp_path / "usage.db")
    await store.open()
    steps: list[str] = []
    await store._call(lambda: store._connection().set_trace_callback(steps.append))
    records = [make_record() for _ in range(1200)]
    await store.write(records)
    await store._call(lambda: store._connection().set_trace_callback(None))
    inserts = [sql for sql in steps if sql.lstrip().startswith("INSERT")]
    assert len(inserts) == len(_chunk_sizes(1200, 256)) == 7  # 4 x 256, 128, 32, 16
    rows = await store.query(group_by=["key_id"])
    assert [row["requests"] for row in rows] == [1200]
    await store.close()


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 255, 256, 257, 500, 511, 512, 1200, 4097])
@pytest.mark.parametrize("largest", [1, 32, 256])
def test_sqlite_batches_are_cut_into_power_of_two_inserts(rows: int, largest: int) -> None:
    # Every distinct size is a statement SQLite keeps prepared: only log2(largest) + 1 sizes.
    sizes = _chunk_sizes(rows, largest)
    assert sum(sizes) == rows
    assert all(size <= largest and size & (size - 1) == 0 for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    assert len(set(sizes) - {largest}) == len(sizes) - sizes.count(largest)  # rest: distinct


# -- choosing a store from the usage.store setting -----------------------------------------


@pytest.mark.parametrize(
    ("dsn", "path"),
    [
        ("sqlite:///gateway-usage.db", Path("gateway-usage.db")),
        ("sqlite:///data/usage.db", Path("data/usage.db")),
        ("sqlite:////var/lib/gw/usage.db", Path("/var/lib/gw/usage.db")),
        ("SQLite:///x.db", Path("x.db")),
    ],
)
def test_open_store_sqlite_paths(dsn: str, path: Path) -> None:
    store = open_store(dsn)
    assert isinstance(store, SQLiteUsageStore)
    assert store.path == path


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:p@db:5432/usage", "postgres://db/usage", "postgresql:///usage"]
)
def test_open_store_postgres(dsn: str) -> None:
    store = open_store(dsn, schema="gateway")
    assert isinstance(store, PostgresUsageStore)
    assert store.schema == "gateway"


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://root:hunter2@db/usage",
        "redis://localhost:6379/0",
        "gateway-usage.db",
        "sqlite://host/usage.db",
        "sqlite:///",
        "sqlite:///data/",
    ],
)
def test_open_store_rejects_other_settings(dsn: str) -> None:
    with pytest.raises(ValueError, match=r"usage\.store") as caught:
        open_store(dsn)
    assert "hunter2" not in str(caught.value)


def test_schema_names_are_checked() -> None:
    with pytest.raises(ValueError):
        open_store("sqlite:///x.db", schema="gateway")
    with pytest.raises(ValueError):
        PostgresUsageStore("postgresql://db/usage", schema='x"; DROP SCHEMA public; --')


async def test_tier_and_one_hour_writes_are_stored(backend: Backend) -> None:
    store = await backend.open()
    record = make_record(
        id="tiered", cache_write_tokens=50, cache_write_1h_tokens=30, service_tier="flex"
    )
    await store.write([record])
    row = await backend.raw_row("tiered")
    assert row["service_tier"] == "flex" and row["cache_write_1h_tokens"] == 30
    (total,) = await store.query(group_by=["service_tier"])
    assert total["service_tier"] == "flex" and total["cache_write_1h_tokens"] == 30


async def test_a_version_1_sqlite_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    from gateway.usage import sqlite as sqlite_store

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    _, _, statements = sqlite_store._MIGRATIONS[0]
    for statement in statements:
        conn.execute(statement)
    conn.execute(
        "CREATE TABLE usage_schema_version (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    conn.execute("INSERT INTO usage_schema_version VALUES (1, 'v1', datetime('now'))")
    conn.execute(
        "INSERT INTO usage_records (id, ts, request_id, route, stream, status, input_tokens,"
        " output_tokens, cache_read_tokens, cache_write_tokens, cost_e10, latency_ms, estimated)"
        " VALUES ('old', '2026-11-02 12:00:00.000000', 'r', '/v1/chat/completions', 0, 200,"
        " 10, 5, 0, 7, 280000, 1.0, 0)"
    )
    conn.commit()
    conn.close()
    store = SQLiteUsageStore(path)
    await store.open()
    try:
        (row,) = await store.query(group_by=["service_tier", "region", "guardrail_id"])
        assert row["service_tier"] is None and row["region"] is None
        assert row["guardrail_id"] is None
        assert row["cache_write_tokens"] == 7 and row["cache_write_1h_tokens"] == 0
        await store.write([make_record(service_tier="priority", cache_write_1h_tokens=0)])
        tiers = [r["service_tier"] for r in await store.query(group_by=["service_tier"])]
        assert tiers == ["priority", None]
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_version_1_postgres_ledger_is_upgraded_in_place() -> None:
    import os
    import uuid

    import asyncpg

    from gateway.usage import postgres as postgres_store

    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    schema = f"usage_v1_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        _, _, statements = postgres_store._MIGRATIONS[0]
        for statement in statements:
            await conn.execute(statement)
        await conn.execute(
            "CREATE TABLE usage_schema_version (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        await conn.execute("INSERT INTO usage_schema_version VALUES (1, 'v1')")
        await conn.execute(
            "INSERT INTO usage_records (id, ts, request_id, route, stream, status, input_tokens,"
            " output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, latency_ms,"
            " estimated) VALUES ('old', now(), 'r', '/v1/chat/completions', false, 200, 10, 5,"
            " 0, 7, 0.000028, 1.0, false)"
        )
        store = PostgresUsageStore(dsn, schema=schema)
        await store.open()
        try:
            (row,) = await store.query(group_by=["service_tier", "region", "guardrail_id"])
            assert row["service_tier"] is None and row["region"] is None
            assert row["guardrail_id"] is None
            assert row["cache_write_tokens"] == 7 and row["cache_write_1h_tokens"] == 0
            versions = await conn.fetch("SELECT version FROM usage_schema_version ORDER BY 1")
            assert [v[0] for v in versions] == [1, 2, 3, 4]
        finally:
            await store.close()
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def test_region_and_guardrail_are_stored_and_groupable(backend: Backend) -> None:
    store = await backend.open()
    await store.write(
        [
            make_record(id="east", region="us-east-1", guardrail_id="abc123def456"),
            make_record(id="west", region="us-west-2", guardrail_id=None),
            make_record(id="west2", region="us-west-2", guardrail_id="abc123def456"),
        ]
    )
    row = await backend.raw_row("east")
    assert row["region"] == "us-east-1" and row["guardrail_id"] == "abc123def456"
    by_region = await store.query(group_by=["region"])
    assert [(r["region"], r["requests"]) for r in by_region] == [
        ("us-east-1", 1),
        ("us-west-2", 2),
    ]
    by_guardrail = await store.query(group_by=["guardrail_id"])
    assert [(r["guardrail_id"], r["requests"]) for r in by_guardrail] == [
        ("abc123def456", 2),
        (None, 1),
    ]


async def test_a_version_3_sqlite_ledger_gains_region_and_guardrail(tmp_path: Path) -> None:
    import sqlite3

    from gateway.usage import sqlite as sqlite_store

    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE usage_schema_version (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for version, description, statements in sqlite_store._MIGRATIONS[:3]:
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO usage_schema_version VALUES (?, ?, datetime('now'))",
            (version, description),
        )
    conn.execute(
        "INSERT INTO usage_records (id, ts, request_id, route, stream, status, input_tokens,"
        " output_tokens, cache_read_tokens, cache_write_tokens, cost_e10, latency_ms, estimated,"
        " service_tier) VALUES ('old', '2026-11-02 12:00:00.000000', 'r', '/v1/chat/completions',"
        " 0, 200, 10, 5, 0, 0, 280000, 1.0, 0, 'flex')"
    )
    conn.commit()
    conn.close()
    store = SQLiteUsageStore(path)
    await store.open()
    try:
        await store.write([make_record(region="eu-west-1", guardrail_id="g1")])
        rows = await store.query(group_by=["region", "guardrail_id"])
        assert [(r["region"], r["guardrail_id"], r["requests"]) for r in rows] == [
            ("eu-west-1", "g1", 1),
            (None, None, 1),
        ]
    finally:
        await store.close()
