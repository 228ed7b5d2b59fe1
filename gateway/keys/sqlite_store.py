"""The key store in the SQLite usage file (see `gateway.keys.store` for the logic).

Its own connection on its own single worker thread, like the ledger's: `sqlite3` blocks,
and one thread owning the connection keeps `check_same_thread` meaningful. Changes take
the write lock up front (`BEGIN IMMEDIATE`), so two workers or the CLI and a gateway
changing keys together queue on the busy timeout instead of failing halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.keys.store import SqlKeyStore, key_migrations
from gateway.usage.migrations import migrate_sqlite

__all__ = ["SQLiteKeyStore"]

logger = logging.getLogger("gateway.keys")

T = TypeVar("T")

_MIGRATIONS = key_migrations("INTEGER PRIMARY KEY AUTOINCREMENT")


class _SQLiteTx:
    def __init__(self, store: SQLiteKeyStore) -> None:
        self._store = store

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._store._call(self._store._fetch_sync, sql, args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._store._call(self._store._fetch_sync, sql, args)


class SQLiteKeyStore(SqlKeyStore):
    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # One transaction at a time on the one connection.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._executor is not None:
            raise RuntimeError("the SQLite key store is already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keys-sqlite")
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

    @contextlib.asynccontextmanager
    async def _transaction(self, *, write: bool = True) -> AsyncIterator[_SQLiteTx]:
        async with self._lock:
            await self._call(self._execute_sync, "BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SQLiteTx(self)
            except BaseException:
                await self._call(self._rollback_sync)
                raise
            await self._call(self._execute_sync, "COMMIT")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the SQLite key store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    # -- on the worker thread ----------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the SQLite key store is not open")
        return self._conn

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        self._conn = conn
        # The ledger (opened first by the gateway) switched the file to WAL already; a
        # CLI opening a fresh file gets the rollback journal, which is just as correct.
        conn.execute("PRAGMA synchronous=FULL")
        self._migrate_sync(conn)

    def _migrate_sync(self, conn: sqlite3.Connection) -> None:
        migrate_sqlite(
            conn, _MIGRATIONS, table="key_schema_version", store=f"key store {self.path}"
        )

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _execute_sync(self, sql: str) -> None:
        self._connection().execute(sql)

    def _fetch_sync(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, args).fetchall()

    def _rollback_sync(self) -> None:
        conn = self._connection()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
