"""The key store in the PostgreSQL usage database (see `gateway.keys.store`).

Its own small asyncpg pool. Statements are written once with `?` placeholders and
numbered here (`$1`, `$2`, ...); none of them holds a `?` inside a string literal.
Migrations run under a session advisory lock of their own, so a fleet starting
together applies each exactly once, as the ledger's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from gateway.keys.store import SqlKeyStore, key_migrations
from gateway.usage.migrations import migrate_postgres

__all__ = ["PostgresKeyStore"]

logger = logging.getLogger("gateway.keys")

_MIGRATION_LOCK = int.from_bytes(
    hashlib.sha256(b"bedrock-gateway/keys/migrations").digest()[:8], "big", signed=True
)
_MIGRATIONS = key_migrations("BIGSERIAL PRIMARY KEY")
_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=128)
def _numbered(sql: str) -> str:
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._conn.fetch(_numbered(sql), *args)]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(_numbered(sql), *args)


class PostgresKeyStore(SqlKeyStore):
    def __init__(self, dsn: str, *, max_size: int = 2, connect_timeout_s: float = 10.0) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            raise RuntimeError("the PostgreSQL key store is already open")
        pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._max_size, timeout=self._connect_timeout_s
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

    @contextlib.asynccontextmanager
    async def _transaction(self, *, write: bool = True) -> AsyncIterator[_PostgresTx]:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL key store is not open")
        async with self._pool.acquire() as conn, conn.transaction():
            if write:
                # Serialise changes on the counter row: two admins changing the same key
                # at once apply one after the other, each on the other's result.
                await conn.execute("SELECT 1 FROM key_store_state WHERE id = 1 FOR UPDATE")
            yield _PostgresTx(conn)

    async def _migrate(self, conn: Any) -> None:
        await migrate_postgres(
            conn, _MIGRATIONS, table="key_schema_version", store="key store", lock=_MIGRATION_LOCK
        )
