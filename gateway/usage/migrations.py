"""Versioned schema migrations, for every table set kept in the usage database.

The ledger (`usage_schema_version`) and the key store (`key_schema_version`) each keep a
list of migrations and a version table of their own, in the same database; this module
runs either list, the same way on both engines:

* each migration runs once, in its own transaction, and is recorded with its version;
* two gateways starting together apply each one exactly once (SQLite: `BEGIN IMMEDIATE`
  takes the write lock before the version is read; PostgreSQL: an advisory lock);
* a database newer than the code refuses to start, rather than be written wrongly.

A migration is never edited once released: a change to a schema is a new entry at the
end. The lists are applied in order past the highest version applied, so versions
released together must be numbered in the order they run.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["Migration", "migrate_postgres", "migrate_sqlite"]

logger = logging.getLogger("gateway.usage")

# (version, description, SQL statements)
Migration = tuple[int, str, tuple[str, ...]]


def migrate_sqlite(
    conn: sqlite3.Connection, migrations: Sequence[Migration], *, table: str, store: str
) -> None:
    """Apply `migrations` to an autocommit (`isolation_level=None`) connection."""
    latest = migrations[-1][0]
    for version, description, statements in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TEXT NOT NULL)"
            )
            applied = conn.execute(f"SELECT MAX(version) FROM {table}").fetchone()[0] or 0
            if applied > latest:
                raise RuntimeError(
                    f"{store} has schema version {applied}, newer than this gateway "
                    f"knows ({latest}); upgrade the gateway"
                )
            if applied < version:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {table} VALUES (?, ?, datetime('now'))", (version, description)
                )
                logger.info("%s: applied migration %d", store, version)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


async def migrate_postgres(
    conn: Any,
    migrations: Sequence[Migration],
    *,
    table: str,
    store: str,
    lock: int,
    prepare: Callable[[Any], Awaitable[None]] | None = None,
) -> None:
    """Apply `migrations` on an asyncpg connection, under advisory lock `lock`;
    `prepare(conn)` runs first under the lock (e.g. creating the schema)."""
    latest = migrations[-1][0]
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        if prepare is not None:
            await prepare(conn)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = await conn.fetchval(f"SELECT MAX(version) FROM {table}") or 0
        if applied > latest:
            raise RuntimeError(
                f"{store} has schema version {applied}, newer than this gateway "
                f"knows ({latest}); upgrade the gateway"
            )
        for version, description, statements in migrations:
            if version <= applied:
                continue
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {table} (version, description) VALUES ($1, $2)",
                    version,
                    description,
                )
            logger.info("%s: applied PostgreSQL migration %d", store, version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)
