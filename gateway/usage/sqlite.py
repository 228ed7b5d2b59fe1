"""The SQLite usage store: one file, no server, the default for a single gateway.

`sqlite3` calls block, so every one of them runs on a single worker thread that owns the
only connection (`check_same_thread` stays on and would catch a slip). One thread also
means one statement at a time, which is all SQLite does anyway; the event loop only ever
awaits a future.

Several processes may share the file (`--workers N`): WAL mode lets readers run beside
the writer, writes take the lock up front with `BEGIN IMMEDIATE` so two writers queue on
the busy timeout instead of failing halfway, and `synchronous=FULL` makes a committed
batch survive a power cut, not only a crash.

Money is an integer count of 1e-10 USD (`cost_e10`, see `gateway.usage.money`) and time
is UTC text in a fixed-width format, so both sort and sum exactly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from gateway.responses import store as responses_store
from gateway.responses.store import StoredResponse
from gateway.usage.clean import clean_values
from gateway.usage.migrations import Migration, migrate_sqlite
from gateway.usage.money import as_utc, cost_from_units, cost_to_units
from gateway.usage.record import RECORD_FIELDS, UsageRecord
from gateway.usage.store import aggregate_rows, aggregate_sql, validate_group_by

__all__ = ["SQLiteUsageStore"]

logger = logging.getLogger("gateway.usage")

T = TypeVar("T")

# Each migration runs once, in its own transaction, and is never edited once released:
# a change to the schema is a new entry at the end.
_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "usage_records table and its indexes",
        (
            """
            CREATE TABLE usage_records (
                id TEXT PRIMARY KEY,
                ts TEXT NOT NULL,
                request_id TEXT NOT NULL,
                key_id TEXT,
                team TEXT,
                "user" TEXT,
                end_user TEXT,
                model TEXT,
                bedrock_model_id TEXT,
                route TEXT NOT NULL,
                stream INTEGER NOT NULL,
                status INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL,
                cache_write_tokens INTEGER NOT NULL,
                cost_e10 INTEGER,
                latency_ms REAL NOT NULL,
                ttft_ms REAL,
                estimated INTEGER NOT NULL,
                error_type TEXT
            )
            """,
            "CREATE INDEX usage_records_ts ON usage_records (ts)",
            "CREATE INDEX usage_records_key_id_ts ON usage_records (key_id, ts)",
            "CREATE INDEX usage_records_team_ts ON usage_records (team, ts)",
            'CREATE INDEX usage_records_user_ts ON usage_records ("user", ts)',
            "CREATE INDEX usage_records_end_user_ts ON usage_records (end_user, ts)",
            "CREATE INDEX usage_records_model_ts ON usage_records (model, ts)",
        ),
    ),
    (
        2,
        "service_tier and cache_write_1h_tokens (Bedrock service tiers, 1-hour cache writes)",
        (
            "ALTER TABLE usage_records ADD COLUMN service_tier TEXT",
            # Records from before this migration wrote no 1-hour cache points: 0 is exact.
            "ALTER TABLE usage_records ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    responses_store.SQLITE_MIGRATION,
    (
        4,
        "region and guardrail_id (several regions per model, Bedrock Guardrails)",
        (
            # Nullable, no default: records from before this migration name no region
            # and no guardrail, and a report shows them as a group of their own.
            "ALTER TABLE usage_records ADD COLUMN region TEXT",
            "ALTER TABLE usage_records ADD COLUMN guardrail_id TEXT",
        ),
    ),
)

_COLUMNS = tuple("cost_e10" if name == "cost_usd" else name for name in RECORD_FIELDS)
_INSERT_HEAD = "INSERT INTO usage_records ({}) VALUES ".format(
    ", ".join(f'"{name}"' for name in _COLUMNS)
)
_VALUES_ROW = "(" + ", ".join("?" for _ in _COLUMNS) + ")"

# The most rows one INSERT statement carries (a power of two; fewer when SQLite allows
# fewer bound variables).
_MAX_ROWS_PER_INSERT = 256


@functools.lru_cache(maxsize=16)
def _insert_sql(rows: int) -> str:
    values = ", ".join([_VALUES_ROW] * rows)
    return f"{_INSERT_HEAD}{values} ON CONFLICT (id) DO NOTHING"


def _chunk_sizes(rows: int, largest: int) -> list[int]:
    """How to cut `rows` into INSERTs: full ones of `largest`, then the rest's binary digits.

    A batch is a few statements, not one per record: the writes run on a thread, and
    sqlite3 lets go of the GIL around each statement it steps, so with one per record a
    busy event loop kept the writer waiting once per row, and under load the ledger fell
    behind the requests. Sizes are powers of two because SQLite caches every distinct
    statement it prepared, at about 1.4 MB for 450 rows: a size per batch length grew
    the cache by megabytes.
    """
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    size = largest
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


_GROUP_EXPRESSIONS = {
    "key_id": "key_id",
    "team": "team",
    "user": '"user"',
    "end_user": "end_user",
    "model": "model",
    "route": "route",
    "status": "status",
    "service_tier": "service_tier",
    "region": "region",
    "guardrail_id": "guardrail_id",
    "day": "substr(ts, 1, 10)",
}

_SUMS = (
    "COUNT(*)",
    "COALESCE(SUM(input_tokens), 0)",
    "COALESCE(SUM(output_tokens), 0)",
    "COALESCE(SUM(cache_read_tokens), 0)",
    "COALESCE(SUM(cache_write_tokens), 0)",
    "COALESCE(SUM(cache_write_1h_tokens), 0)",
    "SUM(cost_e10)",
)


def _ts_text(value: datetime) -> str:
    # Fixed width, so that text order is time order and substr(ts, 1, 10) is the UTC day.
    # isoformat with a timespec always has the microseconds (strftime is ~5x slower).
    return as_utc(value).isoformat(sep=" ", timespec="microseconds")[:26]


_TS, _STREAM, _COST, _ESTIMATED = (
    RECORD_FIELDS.index(name) for name in ("ts", "stream", "cost_usd", "estimated")
)


def _row(record: UsageRecord) -> list[Any]:
    """The record's column values in `_COLUMNS` order, as SQLite stores them."""
    # Caller text made storable and capped: one bad row must not fail its batch.
    values = clean_values(record.values())
    values[_TS] = _ts_text(record.ts)
    values[_STREAM] = int(record.stream)
    values[_ESTIMATED] = int(record.estimated)
    cost = record.cost_usd
    values[_COST] = None if cost is None else cost_to_units(cost)
    return values


class SQLiteUsageStore:
    """The usage ledger in one SQLite file; see the module docstring."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._rows_per_insert = _MAX_ROWS_PER_INSERT

    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError("the SQLite usage store is already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-sqlite")
        try:
            await self._call(self._open_sync)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_sync)
        await asyncio.to_thread(executor.shutdown)

    async def ping(self) -> None:
        await self._call(self._ping_sync)

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if records:
            rows = [_row(record) for record in records]
            await self._call(self._write_sync, rows)

    async def query(
        self,
        *,
        group_by: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        fields = validate_group_by(group_by)
        where, params = _where(start=start, end=end, key_id=key_id)
        sql = aggregate_sql(fields, groups=_GROUP_EXPRESSIONS, sums=_SUMS, where=where)
        raw = await self._call(self._fetch_sync, sql, params)
        return aggregate_rows(raw, fields, cost=cost_from_units)

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal:
        where, params = _where(start=since, end=None, key_id=key_id, team=team)
        sql = f"SELECT SUM(cost_e10) FROM usage_records{where}"
        raw = await self._call(self._fetch_sync, sql, params)
        total = raw[0][0]
        return cost_from_units(total if total is not None else 0)

    # -- stored responses (`gateway.responses.store` has the SQL and the reasons) ---------

    async def reasoning_key(self) -> bytes:
        return await self._call(responses_store.sqlite_secret, self._connection())

    async def put_response(self, stored: StoredResponse) -> None:
        await self._call(responses_store.sqlite_put, self._connection(), stored)

    async def get_response(
        self, response_id: str, *, key_id: str, now: datetime
    ) -> StoredResponse | None:
        conn = self._connection()
        return await self._call(responses_store.sqlite_get, conn, response_id, key_id, now)

    async def delete_response(self, response_id: str, *, key_id: str) -> bool:
        conn = self._connection()
        return await self._call(responses_store.sqlite_delete, conn, response_id, key_id)

    async def purge_responses(self, *, now: datetime) -> int:
        return await self._call(responses_store.sqlite_purge, self._connection(), now)

    # -- everything below runs on the worker thread --------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the SQLite usage store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the SQLite usage store is not open")
        return self._conn

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is exactly
        # one transaction and DDL is not committed behind our back.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        self._conn = conn
        mode = self._enable_wal(conn)
        if mode != "wal":
            logger.warning("usage store %s: WAL mode unavailable, using %s", self.path, mode)
        conn.execute("PRAGMA synchronous=FULL")
        fitting = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_COLUMNS)
        while self._rows_per_insert > max(1, fitting):
            self._rows_per_insert //= 2
        self._migrate_sync(conn)

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers "locked"
        # at once instead of calling the busy handler, so gateways starting together on
        # one fresh file retry here. The mode is stored in the file: later opens are free.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate_sync(self, conn: sqlite3.Connection) -> None:
        migrate_sqlite(
            conn, _MIGRATIONS, table="usage_schema_version", store=f"usage store {self.path}"
        )

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _ping_sync(self) -> None:
        self._connection().execute("SELECT MAX(version) FROM usage_schema_version").fetchone()

    def _write_sync(self, rows: list[list[Any]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            start = 0
            for size in _chunk_sizes(len(rows), self._rows_per_insert):
                chunk = rows[start : start + size]
                start += size
                conn.execute(_insert_sql(size), [value for row in chunk for value in row])
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _fetch_sync(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, params).fetchall()


def _rollback(conn: sqlite3.Connection) -> None:
    # BEGIN itself may have failed (busy timeout): then there is nothing to roll back, and
    # a second error would hide the first.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _where(
    *,
    start: datetime | None,
    end: datetime | None,
    key_id: str | None,
    team: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if start is not None:
        clauses.append("ts >= ?")
        params.append(_ts_text(start))
    if end is not None:
        clauses.append("ts < ?")
        params.append(_ts_text(end))
    if key_id is not None:
        clauses.append("key_id = ?")
        params.append(key_id)
    if team is not None:
        clauses.append("team = ?")
        params.append(team)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
