"""The key store: API keys, teams and their audit log in the usage database.

One class of logic (`SqlKeyStore`) over two thin backends, SQLite (`sqlite_store.py`)
and PostgreSQL (`postgres_store.py`), chosen by the `usage.store` URL like the ledger,
so there is still only one database to run. The key tables have their own migration
list and version table (`key_schema_version`), apart from the ledger's: the two schemas
evolve independently and neither has to know the other's version numbers.

Every change bumps one counter (`key_store_state.version`) in the same transaction as
the change and its audit entry. Gateways poll that single integer every `auth.refresh_s`
(`gateway.keys.refresher`) and reload the tables only when it moved, so the request path
never queries the store: authentication stays a dict probe in memory.

Only digests are stored. Values are kept as portable text and integers (timestamps as
fixed-width RFC 3339 text, money as decimal text, lists as JSON) so that both backends
run the very same statements; `?` placeholders are rewritten for PostgreSQL.
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from gateway.keys.records import (
    AuditEntry,
    KeySnapshot,
    StoredKey,
    StoredTeam,
    format_ts,
    parse_ts,
)

__all__ = [
    "DuplicateKeyError",
    "KeyRevokedError",
    "KeyStoreError",
    "SqlKeyStore",
    "UnknownKeyError",
    "open_key_store",
]


class KeyStoreError(Exception):
    """Base of the key store's refusals (the admin API maps each to a status)."""


class DuplicateKeyError(KeyStoreError):
    """The key id is taken (by a live, revoked or config key): 409."""


class UnknownKeyError(KeyStoreError):
    """No stored key has that id: 404."""


class KeyRevokedError(KeyStoreError):
    """A revoked key cannot be changed, rotated or re-enabled: 409."""


class Tx(Protocol):
    """One open transaction of a backend; statements use `?` placeholders."""

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, *args: Any) -> None: ...


# Updatable key fields, in column order; `disabled` is stored as 0/1.
_KEY_FIELDS = ("team", "user", "models", "rpm", "tpm", "budget_usd_monthly", "expires_at")
_KEY_COLUMNS = (
    'id, key_sha256, team, "user", models, rpm, tpm, budget_usd_monthly, expires_at, '
    "disabled, revoked_at, created_at, updated_at"
)
_TEAM_COLUMNS = "name, rpm, tpm, budget_usd_monthly, models, updated_at"


def _text_ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _ts(value: str | None) -> datetime | None:
    return None if value is None else parse_ts(value)


def _text_models(value: Sequence[str] | None) -> str | None:
    return None if value is None else json.dumps(list(value))


def _models(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(json.loads(value))


def _money(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _text_money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _key_row(key: StoredKey) -> tuple[Any, ...]:
    return (
        key.id,
        key.key_sha256,
        key.team,
        key.user,
        _text_models(key.models),
        key.rpm,
        key.tpm,
        _text_money(key.budget_usd_monthly),
        _text_ts(key.expires_at),
        int(key.disabled),
        _text_ts(key.revoked_at),
        format_ts(key.created_at),
        format_ts(key.updated_at),
    )


def _key_from(row: Sequence[Any]) -> StoredKey:
    return StoredKey(
        id=row[0],
        key_sha256=row[1],
        team=row[2],
        user=row[3],
        models=_models(row[4]),
        rpm=row[5],
        tpm=row[6],
        budget_usd_monthly=_money(row[7]),
        expires_at=_ts(row[8]),
        disabled=bool(row[9]),
        revoked_at=_ts(row[10]),
        created_at=parse_ts(row[11]),
        updated_at=parse_ts(row[12]),
    )


def _team_from(row: Sequence[Any]) -> StoredTeam:
    return StoredTeam(
        name=row[0],
        rpm=row[1],
        tpm=row[2],
        budget_usd_monthly=_money(row[3]),
        models=_models(row[4]),
        updated_at=parse_ts(row[5]),
    )


def _plain(value: Any) -> Any:
    """A change as JSON for the audit log (never a secret: digests are not audited)."""
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class SqlKeyStore(abc.ABC):
    """The key store's logic; a backend supplies `open`, `close` and `_transaction`."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def _transaction(self, *, write: bool = True) -> contextlib.AbstractAsyncContextManager[Tx]:
        """A transaction; `write=False` for reads, which then take no write lock."""

    # -- reading ------------------------------------------------------------------

    async def version(self) -> int:
        """The change counter: one small read, what every gateway polls."""
        async with self._transaction(write=False) as tx:
            return await _version(tx)

    async def snapshot(self) -> KeySnapshot:
        async with self._transaction(write=False) as tx:
            version = await _version(tx)
            keys = await tx.fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id")
            teams = await tx.fetch(f"SELECT {_TEAM_COLUMNS} FROM key_teams ORDER BY name")
        return KeySnapshot(
            version=version,
            keys=tuple(_key_from(row) for row in keys),
            teams=tuple(_team_from(row) for row in teams),
        )

    async def get_key(self, key_id: str) -> StoredKey | None:
        async with self._transaction(write=False) as tx:
            return await _get(tx, key_id)

    async def audit(self, *, limit: int = 1000) -> list[AuditEntry]:
        async with self._transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT ts, actor, action, target, changes FROM key_audit "
                "ORDER BY seq DESC LIMIT ?",
                limit,
            )
        return [
            AuditEntry(
                ts=parse_ts(row[0]),
                actor=row[1],
                action=row[2],
                target=row[3],
                changes=json.loads(row[4]),
            )
            for row in rows
        ]

    # -- changing: each one transaction with its audit entry and a counter bump ----

    async def create_key(self, key: StoredKey, *, actor: str) -> StoredKey:
        async with self._transaction() as tx:
            if await tx.fetch("SELECT 1 FROM api_keys WHERE id = ?", key.id):
                raise DuplicateKeyError(f"A key with id {key.id!r} exists or existed.")
            placeholders = ", ".join("?" for _ in range(13))
            await tx.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({placeholders})", *_key_row(key)
            )
            changes = {name: _plain(getattr(key, name)) for name in _KEY_FIELDS}
            await _changed(tx, actor, "key.create", key.id, changes)
        return key

    async def update_key(self, key_id: str, changes: Mapping[str, Any], *, actor: str) -> StoredKey:
        """Apply `changes` (any of `_KEY_FIELDS` and `disabled`) to a live stored key."""
        unknown = set(changes) - {*_KEY_FIELDS, "disabled"}
        if unknown:
            raise ValueError(f"not a changeable key field: {sorted(unknown)}")
        async with self._transaction() as tx:
            key = await _live(tx, key_id)
            updated = replace(key, **dict(changes), updated_at=datetime.now(UTC))
            await _write_key(tx, updated)
            await _changed(
                tx,
                actor,
                "key.update",
                key_id,
                {name: _plain(value) for name, value in changes.items()},
            )
        return updated

    async def rotate_key(self, key_id: str, new_digest: str, *, actor: str) -> StoredKey:
        async with self._transaction() as tx:
            key = await _live(tx, key_id)
            updated = replace(key, key_sha256=new_digest, updated_at=datetime.now(UTC))
            await _write_key(tx, updated)
            await _changed(tx, actor, "key.rotate", key_id, {"rotated": True})
        return updated

    async def revoke_key(self, key_id: str, *, actor: str) -> StoredKey:
        """Revoke for good; revoking a revoked key changes nothing and is not audited."""
        async with self._transaction() as tx:
            key = await _get(tx, key_id)
            if key is None:
                raise UnknownKeyError(f"No stored key has id {key_id!r}.")
            if key.revoked_at is not None:
                return key
            now = datetime.now(UTC)
            updated = replace(key, revoked_at=now, updated_at=now)
            await _write_key(tx, updated)
            await _changed(tx, actor, "key.revoke", key_id, {"revoked_at": format_ts(now)})
        return updated

    async def put_team(self, team: StoredTeam, *, actor: str) -> StoredTeam:
        """Create or replace a team's limits and allow-list."""
        async with self._transaction() as tx:
            await tx.execute("DELETE FROM key_teams WHERE name = ?", team.name)
            await tx.execute(
                f"INSERT INTO key_teams ({_TEAM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                team.name,
                team.rpm,
                team.tpm,
                _text_money(team.budget_usd_monthly),
                _text_models(team.models),
                format_ts(team.updated_at),
            )
            changes = {
                name: _plain(getattr(team, name))
                for name in ("rpm", "tpm", "budget_usd_monthly", "models")
            }
            await _changed(tx, actor, "team.put", team.name, changes)
        return team


async def _version(tx: Tx) -> int:
    rows = await tx.fetch("SELECT version FROM key_store_state WHERE id = 1")
    return int(rows[0][0]) if rows else 0


async def _get(tx: Tx, key_id: str) -> StoredKey | None:
    rows = await tx.fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", key_id)
    return _key_from(rows[0]) if rows else None


async def _live(tx: Tx, key_id: str) -> StoredKey:
    key = await _get(tx, key_id)
    if key is None:
        raise UnknownKeyError(f"No stored key has id {key_id!r}.")
    if key.revoked_at is not None:
        raise KeyRevokedError(f"Key {key_id!r} is revoked; it cannot be changed.")
    return key


async def _write_key(tx: Tx, key: StoredKey) -> None:
    row = _key_row(key)
    await tx.execute(
        'UPDATE api_keys SET key_sha256 = ?, team = ?, "user" = ?, models = ?, rpm = ?, '
        "tpm = ?, budget_usd_monthly = ?, expires_at = ?, disabled = ?, revoked_at = ?, "
        "updated_at = ? WHERE id = ?",
        *row[1:11],
        row[12],
        key.id,
    )


async def _changed(tx: Tx, actor: str, action: str, target: str, changes: dict[str, Any]) -> None:
    await tx.execute(
        "INSERT INTO key_audit (ts, actor, action, target, changes) VALUES (?, ?, ?, ?, ?)",
        format_ts(datetime.now(UTC)),
        actor,
        action,
        target,
        json.dumps(changes, sort_keys=True),
    )
    await tx.execute("UPDATE key_store_state SET version = version + 1 WHERE id = 1")


# The key tables, for both backends (only the audit sequence column differs).
def key_migrations(serial: str) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """`serial`: the backend's auto-increment primary key column type."""
    return (
        (
            1,
            "api_keys, key_teams, key_audit and the change counter",
            (
                """
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY,
                    key_sha256 TEXT NOT NULL UNIQUE,
                    team TEXT,
                    "user" TEXT,
                    models TEXT,
                    rpm BIGINT,
                    tpm BIGINT,
                    budget_usd_monthly TEXT,
                    expires_at TEXT,
                    disabled INTEGER NOT NULL,
                    revoked_at TEXT,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE key_teams (
                    name TEXT PRIMARY KEY,
                    rpm BIGINT,
                    tpm BIGINT,
                    budget_usd_monthly TEXT,
                    models TEXT,
                    updated_at TEXT NOT NULL
                )
                """,
                f"""
                CREATE TABLE key_audit (
                    seq {serial},
                    ts TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    target TEXT NOT NULL,
                    changes TEXT NOT NULL
                )
                """,
                "CREATE TABLE key_store_state (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
                "INSERT INTO key_store_state (id, version) VALUES (1, 0)",
            ),
        ),
    )


def open_key_store(dsn: str) -> SqlKeyStore:
    """The key store in the database `usage.store` names; `await store.open()` first."""
    scheme = dsn.partition("://")[0].lower()
    if scheme == "sqlite":
        from gateway.keys.sqlite_store import SQLiteKeyStore
        from gateway.usage.store import _sqlite_path

        return SQLiteKeyStore(_sqlite_path(dsn.partition("://")[2]))
    if scheme in ("postgresql", "postgres"):
        from gateway.keys.postgres_store import PostgresKeyStore

        return PostgresKeyStore(dsn)
    raise ValueError(f"key store: unsupported scheme {scheme!r}")


@contextlib.asynccontextmanager
async def opened(dsn: str) -> AsyncIterator[SqlKeyStore]:
    """For the CLI: the store, opened (migrated) and closed again."""
    store = open_key_store(dsn)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
