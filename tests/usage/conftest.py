"""Fixtures for the usage tests: both stores behind one `Backend` factory.

The store tests run against SQLite (a file in `tmp_path`) and PostgreSQL when
`GATEWAY_TEST_POSTGRES_URL` points at a reachable server; otherwise the PostgreSQL case
is skipped with the reason. Each PostgreSQL test gets a schema of its own, dropped
afterwards, so concurrent runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.usage.postgres import PostgresUsageStore
from gateway.usage.sqlite import SQLiteUsageStore
from gateway.usage.store import UsageStore

_postgres_checked: dict[str, str | None] = {}


async def _postgres_problem(dsn: str) -> str | None:
    if dsn not in _postgres_checked:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _postgres_checked[dsn] = f"PostgreSQL at GATEWAY_TEST_POSTGRES_URL unreachable: {exc}"
        else:
            await conn.close()
            _postgres_checked[dsn] = None
    return _postgres_checked[dsn]


@dataclass
class Backend:
    """One test's backing database: `new()` makes another store on the same data."""

    kind: str
    new: Callable[[], UsageStore]
    versions: Callable[[], Awaitable[list[int]]]
    raw_row: Callable[[str], Awaitable[dict[str, Any]]]
    opened: list[UsageStore] = field(default_factory=list)

    async def open(self) -> UsageStore:
        store = self.new()
        self.opened.append(store)
        await store.open()
        return store


def _sqlite_backend(path: Path) -> Backend:
    def read(sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def versions() -> list[int]:
        rows = read("SELECT version FROM usage_schema_version ORDER BY version")
        return [row[0] for row in rows]

    async def raw_row(record_id: str) -> dict[str, Any]:
        (row,) = read("SELECT * FROM usage_records WHERE id = ?", (record_id,))
        return dict(row)

    return Backend("sqlite", lambda: SQLiteUsageStore(path), versions, raw_row)


def _postgres_backend(dsn: str, schema: str) -> Backend:
    async def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def versions() -> list[int]:
        rows = await fetch("SELECT version FROM usage_schema_version ORDER BY version")
        return [row[0] for row in rows]

    async def raw_row(record_id: str) -> dict[str, Any]:
        (row,) = await fetch("SELECT * FROM usage_records WHERE id = $1", record_id)
        return dict(row)

    return Backend("postgres", lambda: PostgresUsageStore(dsn, schema=schema), versions, raw_row)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        result = _sqlite_backend(tmp_path / "usage.db")
        schema = None
    else:
        dsn = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
        if not dsn:
            pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
        problem = await _postgres_problem(dsn)
        if problem:
            pytest.skip(problem)
        schema = f"usage_test_{uuid.uuid4().hex[:16]}"
        result = _postgres_backend(dsn, schema)
    try:
        yield result
    finally:
        for store in result.opened:
            await store.close()
        if schema is not None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


@pytest.fixture
async def store(backend: Backend) -> UsageStore:
    return await backend.open()
