"""The PostgreSQL usage store: one ledger for a fleet of gateways.

Every gateway process opens its own asyncpg pool and writes its own batches; the primary
key on the record id and `ON CONFLICT DO NOTHING` make a retried batch harmless, so
several writers need no coordination beyond what PostgreSQL already gives.

Start-up is the one place they must coordinate: each process runs the migrations, and
two of them creating the same table at once would fail (even `IF NOT EXISTS` races on the
catalog). A session-level advisory lock serialises that step across the fleet; each
migration then runs in its own transaction and records its version, so it is applied
exactly once however many gateways start together.

Cost is `NUMERIC(20, 10)`: exact, summed exactly, and the same scale as the SQLite store
(see `gateway.usage.money`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from gateway.responses import store as responses_store
from gateway.responses.store import StoredResponse
from gateway.usage.clean import clean_row_text
from gateway.usage.migrations import Migration, migrate_postgres
from gateway.usage.money import as_utc, quantize_cost
from gateway.usage.record import RECORD_FIELDS, UsageRecord
from gateway.usage.store import aggregate_rows, aggregate_sql, validate_group_by

__all__ = ["PostgresUsageStore"]

logger = logging.getLogger("gateway.usage")

# One fixed 64-bit key for "usage migrations", derived from a name so that it does not
# collide by accident with another application's advisory locks on the same server.
_MIGRATION_LOCK = int.from_bytes(
    hashlib.sha256(b"bedrock-gateway/usage/migrations").digest()[:8], "big", signed=True
)

# Each migration runs once, in its own transaction, and is never edited once released.
_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "usage_records table and its indexes",
        (
            """
            CREATE TABLE usage_records (
                id TEXT PRIMARY KEY,
                ts TIMESTAMPTZ NOT NULL,
                request_id TEXT NOT NULL,
                key_id TEXT,
                team TEXT,
                "user" TEXT,
                end_user TEXT,
                model TEXT,
                bedrock_model_id TEXT,
                route TEXT NOT NULL,
                stream BOOLEAN NOT NULL,
                status INTEGER NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cache_read_tokens BIGINT NOT NULL,
                cache_write_tokens BIGINT NOT NULL,
                cost_usd NUMERIC(20, 10),
                latency_ms DOUBLE PRECISION NOT NULL,
                ttft_ms DOUBLE PRECISION,
                estimated BOOLEAN NOT NULL,
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
            "ALTER TABLE usage_records ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0",
        ),
    ),
    responses_store.POSTGRES_MIGRATION,
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

_INSERT = "INSERT INTO usage_records ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING".format(
    ", ".join(f'"{name}"' for name in RECORD_FIELDS),
    ", ".join(f"${i}" for i in range(1, len(RECORD_FIELDS) + 1)),
)

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
    "day": "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

_SUMS = (
    "COUNT(*)",
    "COALESCE(SUM(input_tokens), 0)::bigint",
    "COALESCE(SUM(output_tokens), 0)::bigint",
    "COALESCE(SUM(cache_read_tokens), 0)::bigint",
    "COALESCE(SUM(cache_write_tokens), 0)::bigint",
    "COALESCE(SUM(cache_write_1h_tokens), 0)::bigint",
    "SUM(cost_usd)",
)

# Lower-case only, so the name needs no quoting in search_path and means what it says.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _row(record: UsageRecord) -> tuple[Any, ...]:
    # Caller text made storable and capped: one bad row must not fail its batch.
    values = clean_row_text(record.to_row())
    values["ts"] = as_utc(record.ts)
    if record.cost_usd is not None:
        values["cost_usd"] = quantize_cost(record.cost_usd)
    return tuple(values[name] for name in RECORD_FIELDS)


class PostgresUsageStore:
    """The usage ledger in PostgreSQL; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"PostgreSQL schema name {schema!r} must match [a-z_][a-z0-9_]*")
        self._dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            raise RuntimeError("the PostgreSQL usage store is already open")
        settings = {"search_path": self.schema} if self.schema else None
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._connect_timeout_s,
            server_settings=settings,
        )
        try:
            async with pool.acquire() as conn:
                await self._migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:
            pool.terminate()

    async def ping(self) -> None:
        await self._open_pool().fetchval("SELECT 1", timeout=5)

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        rows = [_row(record) for record in records]
        async with self._open_pool().acquire() as conn, conn.transaction():
            await conn.executemany(_INSERT, rows)

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
        raw = await self._open_pool().fetch(sql, *params)
        return aggregate_rows((tuple(record) for record in raw), fields, cost=quantize_cost)

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal:
        where, params = _where(start=since, end=None, key_id=key_id, team=team)
        total = await self._open_pool().fetchval(
            f"SELECT SUM(cost_usd) FROM usage_records{where}", *params
        )
        return quantize_cost(total if total is not None else Decimal(0))

    # -- stored responses (`gateway.responses.store` has the SQL and the reasons) ---------

    async def reasoning_key(self) -> bytes:
        return await responses_store.pg_secret(self._open_pool())

    async def put_response(self, stored: StoredResponse) -> None:
        await responses_store.pg_put(self._open_pool(), stored)

    async def get_response(
        self, response_id: str, *, key_id: str, now: datetime
    ) -> StoredResponse | None:
        return await responses_store.pg_get(self._open_pool(), response_id, key_id, now)

    async def delete_response(self, response_id: str, *, key_id: str) -> bool:
        return await responses_store.pg_delete(self._open_pool(), response_id, key_id)

    async def purge_responses(self, *, now: datetime) -> int:
        return await responses_store.pg_purge(self._open_pool(), now)

    def _open_pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL usage store is not open")
        return self._pool

    async def _migrate(self, conn: Any) -> None:
        await migrate_postgres(
            conn,
            _MIGRATIONS,
            table="usage_schema_version",
            store="usage store",
            lock=_MIGRATION_LOCK,
            prepare=self._create_schema,
        )

    async def _create_schema(self, conn: Any) -> None:
        if self.schema and not await conn.fetchval(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema
        ):
            # Only when missing: a role may use a schema without the right to create one.
            await conn.execute(f'CREATE SCHEMA "{self.schema}"')


def _where(
    *,
    start: datetime | None,
    end: datetime | None,
    key_id: str | None,
    team: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("ts >= ${}", None if start is None else as_utc(start)),
        ("ts < ${}", None if end is None else as_utc(end)),
        ("key_id = ${}", key_id),
        ("team = ${}", team),
    ):
        if value is not None:
            params.append(value)
            clauses.append(clause.format(len(params)))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
