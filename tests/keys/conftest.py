"""Key store fixtures: a database URL for SQLite (a file in `tmp_path`) and, when
`GATEWAY_TEST_POSTGRES_URL` reaches a server, for PostgreSQL in a schema of its own
(named in the URL's `search_path`, which asyncpg passes on as a server setting), dropped
afterwards so concurrent runs never see each other's keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from gateway.keys.store import SqlKeyStore, open_key_store


async def _postgres_problem(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at GATEWAY_TEST_POSTGRES_URL unreachable: {exc}"
    await conn.close()
    return None


async def postgres_schema_url(dsn: str) -> tuple[str, str]:
    schema = f"keys_test_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    joiner = "&" if "?" in dsn else "?"
    return schema, f"{dsn}{joiner}search_path={schema}"


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def key_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
        return
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not dsn:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    problem = await _postgres_problem(dsn)
    if problem:
        pytest.skip(problem)
    schema, url = await postgres_schema_url(dsn)
    try:
        yield url
    finally:
        await drop_schema(dsn, schema)


@pytest.fixture
async def key_store(key_dsn: str) -> AsyncIterator[SqlKeyStore]:
    store = open_key_store(key_dsn)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
