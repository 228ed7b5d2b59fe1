"""The usage ledger is exact: what Bedrock reported, priced to the last digit, once each.

A mixed, concurrent load goes through the `openai` SDK: three keys in two teams, two
priced models, streaming and not, scripted Bedrock usage (cache tokens included), Bedrock
errors before and during streams, and clients that hang up mid-stream. Every request
carries its own `x-request-id`, so each ledger row can be held against the one request it
records. The same load runs against SQLite and PostgreSQL (skipped, with the reason, when
`GATEWAY_TEST_POSTGRES_URL` is unset or unreachable; each run gets a schema of its own).

The second test stops a real `serve` with SIGTERM while requests are arriving and while
the ledger file is locked, so that the last records can only go to the spill file: after
the exit every answered request is on disk (ledger or spill file), and after a restart on
the same files the ledger holds each of them exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.usage.spill import decode_record
from gateway.usage.store import open_store
from tests.harness import script
from tests.processes import GatewayProcessFactory, process_config, sha
from tests.servers import ServerThread

KEYS = {  # key_id: (plaintext key, team)
    "alpha": ("sk-ledger-alpha", "search"),
    "beta": ("sk-ledger-beta", "search"),
    "gamma": ("sk-ledger-gamma", "ads"),
}
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
# Per 1,000 tokens. Nova's cache-read price makes single tokens cost 8.75e-9 USD, so the
# ten-place rounding of each record is exercised, not only the sums.
PRICES = {
    "claude-3-5-sonnet": ("0.003", "0.015", "0.0003", "0.00375"),
    "nova-micro": ("0.000035", "0.00014", "0.00000875", "0.00004375"),
}
MODELS = [
    {
        "name": "claude-3-5-sonnet",
        "bedrock_id": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "pricing": dict(zip(("input_per_1k", "output_per_1k", "cache_read_per_1k",
                             "cache_write_per_1k"), PRICES["claude-3-5-sonnet"], strict=True)),
    },
    {
        "name": "nova-micro",
        "bedrock_id": "amazon.nova-micro-v1:0",
        "pricing": dict(zip(("input_per_1k", "output_per_1k", "cache_read_per_1k",
                             "cache_write_per_1k"), PRICES["nova-micro"], strict=True)),
    },
]  # fmt: skip
BEDROCK_ERRORS = (
    "ThrottlingException",
    "ValidationException",
    "ModelErrorException",
    "AccessDeniedException",
    "ServiceUnavailableException",
    "ModelTimeoutException",
)
STREAM_ERRORS = ("throttlingException", "modelStreamErrorException")
# Kinds of request in the mixed load, and how many of each.
MIX = {"ok": 34, "stream": 34, "error": 14, "stream_refused": 10, "stream_error": 12, "hangup": 16}
LOAD = sum(MIX.values())  # 120
THREADS = 8


def key_entries() -> list[dict[str, Any]]:
    return [
        {"id": key_id, "key_sha256": sha(key), "team": team} for key_id, (key, team) in KEYS.items()
    ]


# --- the plan: what each request asks Bedrock to report ---------------------------------


@dataclass(frozen=True)
class Plan:
    request_id: str
    key_id: str
    model: str
    kind: str
    usage: tuple[int, int, int, int]  # input, output, cache_read, cache_write (Bedrock's)
    error: str | None = None
    pace_ms: int = 2  # between stream events; a non-streamed answer waits as long in total

    @property
    def key(self) -> str:
        return KEYS[self.key_id][0]

    @property
    def team(self) -> str:
        return KEYS[self.key_id][1]

    @property
    def stream(self) -> bool:
        return self.kind != "ok" and self.kind != "error"

    def content(self) -> str:
        usage = dict(
            zip(
                ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"),
                self.usage,
                strict=True,
            )
        )
        directive: dict[str, Any] = {"usage": usage, "reply": "alpha beta gamma delta epsilon"}
        if self.kind in ("error", "stream_refused"):
            directive["error"] = self.error
        elif self.kind == "stream_error":
            directive["stream_error"] = {"type": self.error, "after_events": 3}
        elif self.kind == "hangup":
            # Long and paced, so that the client is gone well before Bedrock's metadata.
            directive["reply"] = " ".join(f"w{i}" for i in range(40))
            directive["delay_ms"] = 25
        else:
            directive["delay_ms"] = self.pace_ms
        return script(f"request {self.request_id}", **directive)


def make_plans(seed: int, mix: dict[str, int], *, pace_ms: int = 2) -> list[Plan]:
    rng = random.Random(seed)
    kinds = [kind for kind, count in mix.items() for _ in range(count)]
    rng.shuffle(kinds)
    plans = []
    for kind in kinds:
        usage = (
            rng.randint(1, 4000),
            rng.randint(1, 1500),
            rng.choice((0, rng.randint(1, 20000))),
            rng.choice((0, rng.randint(1, 5000))),
        )
        error = None
        if kind in ("error", "stream_refused"):
            error = rng.choice(BEDROCK_ERRORS)
        elif kind == "stream_error":
            error = rng.choice(STREAM_ERRORS)
        plans.append(
            Plan(
                request_id=uuid.uuid4().hex,
                key_id=rng.choice(list(KEYS)),
                model=rng.choice(list(PRICES)),
                kind=kind,
                usage=usage,
                error=error,
                pace_ms=pace_ms,
            )
        )
    return plans


def expected_cost(model: str, tokens: tuple[int, int, int, int]) -> Decimal:
    """Tokens times the configured prices, rounded once to 1e-10 USD (half-even)."""
    total = sum(
        (count * Decimal(price) for count, price in zip(tokens, PRICES[model], strict=True)),
        Decimal(0),
    )
    return (total / 1000).quantize(Decimal("1e-10"), rounding=ROUND_HALF_EVEN)


# --- running the plan through the openai SDK --------------------------------------------


@dataclass
class Outcome:
    status: int | None = None  # the HTTP status the client received
    answered: bool = False  # a complete response (body read to its end, or an error body)
    refused: bool = False  # the connection was refused: the gateway never saw the request
    failure: str | None = None  # any other transport failure


def run_plan(plan: Plan, clients: dict[str, openai.OpenAI]) -> Outcome:
    client = clients[plan.key_id]
    outcome = Outcome()
    messages: Any = [{"role": "user", "content": plan.content()}]
    headers = {"x-request-id": plan.request_id}
    try:
        if not plan.stream:
            raw = client.chat.completions.with_raw_response.create(
                model=plan.model, messages=messages, extra_headers=headers
            )
            outcome.status = raw.status_code
            raw.parse()
            outcome.answered = True
            return outcome
        stream = client.chat.completions.create(
            model=plan.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        outcome.status = stream.response.status_code
        with stream:
            for index, _ in enumerate(stream):
                if plan.kind == "hangup" and index == 1:
                    break  # leaving the block closes the connection mid-stream
        outcome.answered = True
    except openai.APIStatusError as exc:
        outcome.status = exc.status_code
        outcome.answered = True
    except openai.APIConnectionError as exc:
        # The SDK's transport (httpx, or httpx2 in openai 3) raises its own ConnectError.
        if type(exc.__cause__).__name__ == "ConnectError":
            outcome.refused = True
        else:
            outcome.failure = repr(exc.__cause__ or exc)
    except openai.APIError:  # an error event after the stream had started (status 200)
        outcome.answered = True
    return outcome


def run_load(
    url: str, plans: list[Plan], *, on_outcome: Callable[[Outcome], None] | None = None
) -> dict[str, Outcome]:
    clients = {
        key_id: openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)
        for key_id, (key, _) in KEYS.items()
    }

    def one(plan: Plan) -> tuple[str, Outcome]:
        outcome = run_plan(plan, clients)
        if on_outcome is not None:
            on_outcome(outcome)
        return plan.request_id, outcome

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return dict(pool.map(one, plans, timeout=120))
    finally:
        for client in clients.values():
            client.close()


# --- reading the ledger -----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    request_id: str
    key_id: str | None
    team: str | None
    model: str | None
    stream: bool
    status: int
    tokens: tuple[int, int, int, int]
    cost: Decimal | None
    estimated: bool
    error_type: str | None


def _row(data: dict[str, Any], cost: Decimal | None) -> Row:
    return Row(
        id=data["id"],
        request_id=data["request_id"],
        key_id=data["key_id"],
        team=data["team"],
        model=data["model"],
        stream=bool(data["stream"]),
        status=data["status"],
        tokens=(
            data["input_tokens"],
            data["output_tokens"],
            data["cache_read_tokens"],
            data["cache_write_tokens"],
        ),
        cost=cost,
        estimated=bool(data["estimated"]),
        error_type=data["error_type"],
    )


def sqlite_rows(path: Path) -> list[Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(row) for row in conn.execute("SELECT * FROM usage_records")]
    finally:
        conn.close()
    return [
        _row(r, None if r["cost_e10"] is None else Decimal(r["cost_e10"]).scaleb(-10)) for r in rows
    ]


async def postgres_rows(dsn: str) -> list[Row]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = [dict(row) for row in await conn.fetch("SELECT * FROM usage_records")]
    finally:
        await conn.close()
    return [_row(r, r["cost_usd"]) for r in rows]


@dataclass
class Ledger:
    kind: str
    store: str  # the `usage.store` setting

    def rows(self) -> list[Row]:
        if self.kind == "sqlite":
            return sqlite_rows(Path(self.store.removeprefix("sqlite:///")))
        return asyncio.run(postgres_rows(self.store))

    def report(self) -> dict[str, dict[str, Any]]:
        """The store's own per-key report (what `/v1/usage` and the CLI show)."""

        async def query() -> list[dict[str, Any]]:
            store = open_store(self.store)
            await store.open()
            try:
                return await store.query(group_by=["key_id"])
            finally:
                await store.close()

        return {row["key_id"]: row for row in asyncio.run(query())}


async def _postgres_problem(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at GATEWAY_TEST_POSTGRES_URL unreachable: {exc}"
    await conn.close()
    return None


async def _postgres_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        yield Ledger("sqlite", f"sqlite:///{tmp_path / 'usage.db'}")
        return
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    problem = asyncio.run(_postgres_problem(dsn))
    if problem:
        pytest.skip(problem)
    # The config takes only a DSN, so the run's schema comes in through libpq's `options`
    # (asyncpg passes it on to the server as a startup parameter).
    schema = f"ledger_proof_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_execute(dsn, f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in dsn else "?"
    try:
        yield Ledger("postgres", f"{dsn}{separator}options=-csearch_path%3D{schema}")
    finally:
        asyncio.run(_postgres_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@dataclass(frozen=True)
class _Credentials:
    access_key: str = "test"
    secret_key: str = "test"


# --- checks shared by both tests ---------------------------------------------------------


def check_row_against_plan(row: Row, plan: Plan, status: int | None) -> None:
    """One ledger row is the request it records: who, what, status, tokens and price.

    `status` is what the client received (None if it received nothing to compare).
    """
    where = f"{plan.kind} {plan.request_id}"
    assert (row.key_id, row.team, row.model) == (plan.key_id, plan.team, plan.model), where
    assert row.stream == plan.stream, where
    if status is not None:
        assert row.status == status, where
    assert row.cost == expected_cost(plan.model, row.tokens), where
    if plan.kind in ("ok", "stream"):
        assert not row.estimated and row.error_type is None, where
        assert row.tokens == plan.usage, where
    elif plan.kind in ("error", "stream_refused"):
        # Bedrock answered with an error before any token: nothing to bill.
        assert not row.estimated and row.error_type == plan.error, where
        assert row.tokens == (0, 0, 0, 0), where
    elif plan.kind == "stream_error":
        # The exception frame replaced the metadata event: no usage from Bedrock.
        assert plan.error is not None
        assert row.estimated and row.error_type == plan.error[0].upper() + plan.error[1:], where
    elif row.estimated:  # a hang-up noticed before Bedrock's usage arrived
        assert row.error_type == "client_disconnected", where
    else:  # a hang-up after Bedrock's last event was already read: its own numbers
        assert row.tokens == plan.usage, where


# --- the tests --------------------------------------------------------------------------


def test_ledger_equals_what_bedrock_reported(
    ledger_store: Ledger, tmp_path: Path, emulator: ServerThread
) -> None:
    config = GatewayConfig.model_validate(
        {
            "bedrock": {
                "region": "us-east-1",
                "endpoint_url": emulator.url,
                "retries": {"mode": "standard", "max_attempts": 1},
            },
            "models": MODELS,
            "auth": {"keys": key_entries()},
            "usage": {
                "store": ledger_store.store,
                "flush_interval_ms": 20,
                "spill_path": str(tmp_path / "usage.spill.jsonl"),
            },
            "logging": {"format": "text"},
        }
    )
    plans = make_plans(seed=20261121, mix=MIX)
    app = create_app(config, registry=CollectorRegistry(), credentials=_Credentials())
    server = ServerThread(app)
    try:
        outcomes = run_load(server.url, plans)
    finally:
        server.stop()  # the lifespan flushes the recorder before it returns

    assert all(o.answered for o in outcomes.values()), [
        o for o in outcomes.values() if not o.answered
    ]
    rows = ledger_store.rows()

    # One record per request: as many as were sent, unique ids, each request once.
    assert len(rows) == LOAD
    assert len({row.id for row in rows}) == LOAD
    by_request = {row.request_id: row for row in rows}
    assert set(by_request) == {plan.request_id for plan in plans}

    for plan in plans:
        outcome = outcomes[plan.request_id]
        assert outcome.status is not None
        check_row_against_plan(by_request[plan.request_id], plan, outcome.status)

    # Per key, the tokens of every record that carries Bedrock's own numbers add up to
    # exactly what Bedrock reported for those requests.
    reported: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    recorded: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for plan in plans:
        row = by_request[plan.request_id]
        if plan.kind in ("ok", "stream") or (plan.kind == "hangup" and not row.estimated):
            for i, count in enumerate(plan.usage):
                reported[plan.key_id][i] += count
        if not row.estimated:
            for i, count in enumerate(row.tokens):
                recorded[plan.key_id][i] += count
    assert recorded == reported
    assert set(reported) == set(KEYS)

    # Estimated records are flagged, and counted: every stream error, and the hang-ups
    # the gateway noticed before Bedrock's usage arrived.
    estimated = Counter(plan.kind for plan in plans if by_request[plan.request_id].estimated)
    assert estimated["stream_error"] == MIX["stream_error"]
    assert set(estimated) <= {"stream_error", "hangup"}
    assert estimated["hangup"] >= MIX["hangup"] // 2, "most hang-ups should be noticed early"

    # The store's own report per key: the same requests, tokens and exact cost.
    report = ledger_store.report()
    assert set(report) == set(KEYS)
    for key_id in KEYS:
        mine = [row for row in rows if row.key_id == key_id]
        line = report[key_id]
        assert line["requests"] == len(mine)
        for i, kind in enumerate(TOKEN_KINDS):
            assert line[f"{kind}_tokens"] == sum(row.tokens[i] for row in mine)
        assert line["cost_usd"] == sum(
            (expected_cost(row.model or "", row.tokens) for row in mine), Decimal(0)
        )


def _spilled(tmp_path: Path) -> list[Any]:
    records = []
    for path in sorted(tmp_path.glob("usage.spill.jsonl*")):
        records += [decode_record(line) for line in path.read_bytes().splitlines() if line]
    return records


@contextlib.contextmanager
def locked(database: Path) -> Iterator[threading.Event]:
    """Hold SQLite's write lock until the event is set: the usage store is unwritable."""
    release = threading.Event()
    acquired = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(database, timeout=20, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            acquired.set()
            release.wait(120)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert acquired.wait(30), "could not lock the ledger"
        yield release
    finally:
        release.set()
        holder.join(30)


@pytest.mark.slow
def test_sigterm_under_load_loses_and_duplicates_nothing(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    config = process_config(tmp_path, emulator.url, keys=key_entries(), models=MODELS)
    running = gateway_process(config, tmp_path)
    database = tmp_path / "usage.db"
    # Paced (about 0.2 s a request) so that the load outlasts the 2 s drain window.
    mix = {
        "ok": 60,
        "stream": 60,
        "error": 12,
        "stream_refused": 8,
        "stream_error": 10,
        "hangup": 10,
    }
    plans = make_plans(seed=7, mix=mix, pace_ms=40)
    answered = 0
    progress = threading.Condition()

    def count(outcome: Outcome) -> None:
        nonlocal answered
        with progress:
            answered += outcome.answered
            progress.notify_all()

    def wait_answered(n: int) -> None:
        with progress:
            assert progress.wait_for(lambda: answered >= n, timeout=30), answered

    results: dict[str, Outcome] = {}
    load = threading.Thread(
        target=lambda: results.update(run_load(running.url, plans, on_outcome=count))
    )
    load.start()
    try:
        wait_answered(15)
        with locked(database):
            # From here on the gateway cannot write its ledger: what is answered now can
            # only be kept by the spill file.
            with progress:
                answered_before_lock = answered
            wait_answered(answered_before_lock + 10)
            running.send(signal.SIGTERM)
            load.join(90)
            assert not load.is_alive()
            assert running.process.wait(60) == 0
        output = running.output()
    finally:
        load.join(90)
        running.kill()

    assert len(results) == len(plans)
    done = {rid for rid, o in results.items() if o.answered}
    refused = {rid for rid, o in results.items() if o.refused}
    # Anything else is a pooled keep-alive connection the server closed just as a request
    # went out on it: no answer, so no promise either way (but still at most one record).
    assert len(done) >= answered_before_lock + 10
    assert refused, "the load should have outlived the gateway"

    # After the exit: every answered request is durable, in the ledger or the spill file.
    spilled = _spilled(tmp_path)
    assert len(spilled) >= 10, "the lock should have forced records into the spill file"
    on_disk = [row.request_id for row in sqlite_rows(database)] + [r.request_id for r in spilled]
    assert done <= set(on_disk), output
    assert not refused & set(on_disk)

    # A restart on the same files replays the spill file: each request exactly once.
    again = gateway_process(config, tmp_path)
    deadline = time.monotonic() + 30
    while len(sqlite_rows(database)) < len(set(on_disk)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert again.stop() == 0
    rows = sqlite_rows(database)
    assert len(rows) == len({row.id for row in rows}) == len({row.request_id for row in rows})
    assert {row.request_id for row in rows} == set(on_disk)
    assert _spilled(tmp_path) == []
    by_plan = {plan.request_id: plan for plan in plans}
    for row in rows:
        outcome = results[row.request_id]
        check_row_against_plan(row, by_plan[row.request_id], outcome.status)
