"""Stored responses: what `previous_response_id` and `GET /v1/responses/{id}` need.

Why in the usage database: it is the one database every gateway of a fleet already shares
(SQLite for one host, PostgreSQL for many), with a versioned migration path; a stored
response must be visible to whichever worker or replica gets the next request. The tables
come with usage migration version 3 (`SQLITE_MIGRATION`, `POSTGRES_MIGRATION`, listed in
`gateway.usage.sqlite` and `gateway.usage.postgres`); the SQL lives here, the stores run
it on their own connection (SQLite's worker thread, PostgreSQL's pool), so no call blocks
the event loop.

A row holds, as JSON text:

* `response`: the response object as it was sent (for `GET /v1/responses/{id}`);
* `input_items`: this request's input, each item with an id (for `/input_items`);
* `context`: the whole conversation up to and including this response's output, as
  Responses input items, reasoning items with `encrypted_content` (so that a conversation
  continued under thinking keeps its signatures even when the client did not ask for
  them). Continuing is one read; the price is that a long conversation's rows repeat its
  start. `responses.retention_days` bounds it: expired rows are invisible at once and
  deleted by `purge_responses`.

Ownership: every read and delete filters by `key_id`, so another key's response is the
same 404 as a missing one (no oracle for ids).

The reasoning codec's HMAC key is stored here too (`gateway_secrets`, name
`responses.reasoning_key`): created once by whichever gateway first needs it (an insert
that loses the race is ignored, both then read the winner), so every worker and replica
shares it and encrypted reasoning outlives restarts. Anyone who can read the usage
database can forge reasoning content; they could also read the stored conversations.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

__all__ = [
    "POSTGRES_MIGRATION",
    "REASONING_KEY_NAME",
    "SQLITE_MIGRATION",
    "ResponseStore",
    "StoredResponse",
    "pg_delete",
    "pg_get",
    "pg_purge",
    "pg_put",
    "pg_secret",
    "sqlite_delete",
    "sqlite_get",
    "sqlite_purge",
    "sqlite_put",
    "sqlite_secret",
]

REASONING_KEY_NAME: Final = "responses.reasoning_key"

SQLITE_MIGRATION: Final[tuple[int, str, tuple[str, ...]]] = (
    3,
    "stored responses (Responses API) and gateway secrets",
    (
        """
        CREATE TABLE stored_responses (
            id TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            response TEXT NOT NULL,
            input_items TEXT NOT NULL,
            context TEXT NOT NULL
        )
        """,
        "CREATE INDEX stored_responses_expires_at ON stored_responses (expires_at)",
        "CREATE TABLE gateway_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    ),
)

POSTGRES_MIGRATION: Final[tuple[int, str, tuple[str, ...]]] = (
    3,
    "stored responses (Responses API) and gateway secrets",
    (
        """
        CREATE TABLE stored_responses (
            id TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            response TEXT NOT NULL,
            input_items TEXT NOT NULL,
            context TEXT NOT NULL
        )
        """,
        "CREATE INDEX stored_responses_expires_at ON stored_responses (expires_at)",
        "CREATE TABLE gateway_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    ),
)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    key_id: str  # the owner
    created_at: datetime
    expires_at: datetime
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]


class ResponseStore(Protocol):
    """What the Responses surface needs of the usage store."""

    async def reasoning_key(self) -> bytes: ...

    async def put_response(self, stored: StoredResponse) -> None: ...

    async def get_response(
        self, response_id: str, *, key_id: str, now: datetime
    ) -> StoredResponse | None: ...

    async def delete_response(self, response_id: str, *, key_id: str) -> bool: ...

    async def purge_responses(self, *, now: datetime) -> int: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


_COLUMNS: Final = "id, key_id, created_at, expires_at, response, input_items, context"


def _stored(row: Any, *, parse_ts: bool) -> StoredResponse:
    created, expires = (row[2], row[3]) if not parse_ts else (_from_ts(row[2]), _from_ts(row[3]))
    return StoredResponse(
        id=row[0],
        key_id=row[1],
        created_at=created,
        expires_at=expires,
        response=json.loads(row[4]),
        input_items=json.loads(row[5]),
        context=json.loads(row[6]),
    )


# -- SQLite: run on the store's worker thread ----------------------------------------------


def _write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        count = conn.execute(sql, params).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return count


def sqlite_secret(conn: sqlite3.Connection, name: str = REASONING_KEY_NAME) -> bytes:
    _write(
        conn,
        "INSERT OR IGNORE INTO gateway_secrets (name, value) VALUES (?, ?)",
        (name, secrets.token_bytes(32)),
    )
    row = conn.execute("SELECT value FROM gateway_secrets WHERE name = ?", (name,)).fetchone()
    return bytes(row[0])


def sqlite_put(conn: sqlite3.Connection, stored: StoredResponse) -> None:
    _write(
        conn,
        f"INSERT OR REPLACE INTO stored_responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            stored.id,
            stored.key_id,
            _ts(stored.created_at),
            _ts(stored.expires_at),
            _dumps(stored.response),
            _dumps(stored.input_items),
            _dumps(stored.context),
        ),
    )


def sqlite_get(
    conn: sqlite3.Connection, response_id: str, key_id: str, now: datetime
) -> StoredResponse | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM stored_responses WHERE id = ? AND key_id = ? AND expires_at > ?",
        (response_id, key_id, _ts(now)),
    ).fetchone()
    return None if row is None else _stored(row, parse_ts=True)


def sqlite_delete(conn: sqlite3.Connection, response_id: str, key_id: str) -> bool:
    sql = "DELETE FROM stored_responses WHERE id = ? AND key_id = ?"
    return _write(conn, sql, (response_id, key_id)) > 0


def sqlite_purge(conn: sqlite3.Connection, now: datetime) -> int:
    return _write(conn, "DELETE FROM stored_responses WHERE expires_at <= ?", (_ts(now),))


# -- PostgreSQL: `db` is the store's pool ------------------------------------------------------


async def pg_secret(db: Any, name: str = REASONING_KEY_NAME) -> bytes:
    await db.execute(
        "INSERT INTO gateway_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        secrets.token_bytes(32),
    )
    return bytes(await db.fetchval("SELECT value FROM gateway_secrets WHERE name = $1", name))


async def pg_put(db: Any, stored: StoredResponse) -> None:
    await db.execute(
        f"INSERT INTO stored_responses ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (id) DO UPDATE SET response = EXCLUDED.response, "
        "context = EXCLUDED.context",
        stored.id,
        stored.key_id,
        stored.created_at,
        stored.expires_at,
        _dumps(stored.response),
        _dumps(stored.input_items),
        _dumps(stored.context),
    )


async def pg_get(db: Any, response_id: str, key_id: str, now: datetime) -> StoredResponse | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM stored_responses "
        "WHERE id = $1 AND key_id = $2 AND expires_at > $3",
        response_id,
        key_id,
        now,
    )
    return None if row is None else _stored(tuple(row), parse_ts=False)


async def pg_delete(db: Any, response_id: str, key_id: str) -> bool:
    status = await db.execute(
        "DELETE FROM stored_responses WHERE id = $1 AND key_id = $2", response_id, key_id
    )
    return str(status).split()[-1] != "0"


async def pg_purge(db: Any, now: datetime) -> int:
    status = await db.execute("DELETE FROM stored_responses WHERE expires_at <= $1", now)
    return int(str(status).split()[-1])
