"""The key store on SQLite and PostgreSQL: migrations, every change with its audit entry
and counter bump, the refusals, and that a second store on the same database (another
worker, the CLI) sees the same data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.keys.records import StoredKey, StoredTeam, digest_of
from gateway.keys.store import (
    DuplicateKeyError,
    KeyRevokedError,
    SqlKeyStore,
    UnknownKeyError,
    open_key_store,
)


def a_key(key_id: str = "k1", **fields: object) -> StoredKey:
    return StoredKey(id=key_id, key_sha256=digest_of("secret-" + key_id), **fields)  # type: ignore[arg-type]


async def test_a_fresh_store_is_empty_at_version_zero(key_store: SqlKeyStore) -> None:
    snapshot = await key_store.snapshot()
    assert (snapshot.version, snapshot.keys, snapshot.teams) == (0, (), ())
    assert await key_store.audit() == []


async def test_every_change_bumps_the_counter_and_is_audited(key_store: SqlKeyStore) -> None:
    expires = datetime(2999, 1, 2, 3, 4, 5, tzinfo=UTC)
    key = a_key(
        team="search",
        models=("m1", "m2"),
        rpm=5,
        budget_usd_monthly=Decimal("12.5"),
        expires_at=expires,
    )
    await key_store.create_key(key, actor="admin-1")
    assert await key_store.version() == 1
    stored = await key_store.get_key("k1")
    assert stored is not None
    assert (stored.models, stored.budget_usd_monthly, stored.expires_at) == (
        ("m1", "m2"),
        Decimal("12.5"),
        expires,
    )
    updated = await key_store.update_key("k1", {"rpm": None, "disabled": True}, actor="a2")
    assert (updated.rpm, updated.disabled) == (None, True)
    rotated = await key_store.rotate_key("k1", digest_of("new"), actor="a2")
    assert rotated.key_sha256 == digest_of("new")
    revoked = await key_store.revoke_key("k1", actor="a3")
    assert revoked.revoked_at is not None
    assert (await key_store.revoke_key("k1", actor="a3")).revoked_at == revoked.revoked_at
    await key_store.put_team(StoredTeam(name="search", tpm=100, models=("m1",)), actor="a4")
    assert await key_store.version() == 5
    audit = await key_store.audit()
    assert [(e.action, e.actor, e.target) for e in audit] == [
        ("team.put", "a4", "search"),
        ("key.revoke", "a3", "k1"),
        ("key.rotate", "a2", "k1"),
        ("key.update", "a2", "k1"),
        ("key.create", "admin-1", "k1"),
    ]
    assert audit[3].changes == {"disabled": True, "rpm": None}
    assert audit[4].changes["budget_usd_monthly"] == "12.5"
    assert all(digest_of("new") not in str(e.changes) for e in audit)
    snapshot = await key_store.snapshot()
    assert snapshot.teams[0].models == ("m1",) and snapshot.teams[0].tpm == 100


async def test_refusals(key_store: SqlKeyStore) -> None:
    await key_store.create_key(a_key(), actor="a")
    with pytest.raises(DuplicateKeyError):
        await key_store.create_key(a_key(), actor="a")
    with pytest.raises(UnknownKeyError):
        await key_store.update_key("nope", {"rpm": 1}, actor="a")
    with pytest.raises(UnknownKeyError):
        await key_store.revoke_key("nope", actor="a")
    with pytest.raises(ValueError, match="key_sha256"):
        await key_store.update_key("k1", {"key_sha256": "x"}, actor="a")
    await key_store.revoke_key("k1", actor="a")
    with pytest.raises(KeyRevokedError):
        await key_store.update_key("k1", {"disabled": False}, actor="a")
    with pytest.raises(KeyRevokedError):
        await key_store.rotate_key("k1", digest_of("x"), actor="a")
    # A revoked id is never reused.
    with pytest.raises(DuplicateKeyError):
        await key_store.create_key(a_key(), actor="a")
    assert await key_store.version() == 2


async def test_a_second_store_on_the_same_database_sees_changes(
    key_store: SqlKeyStore, key_dsn: str
) -> None:
    other = open_key_store(key_dsn)
    await other.open()  # migrations already applied: nothing to do, no error
    try:
        await other.create_key(a_key("from-cli"), actor="cli:ops")
        assert await key_store.version() == 1
        assert [k.id for k in (await key_store.snapshot()).keys] == ["from-cli"]
    finally:
        await other.close()


def test_usable() -> None:
    now = datetime.now(UTC)
    assert a_key().usable(now)
    assert not a_key(disabled=True).usable(now)
    assert not a_key(revoked_at=now).usable(now)
    assert not a_key(expires_at=now - timedelta(seconds=1)).usable(now)
    assert a_key(expires_at=now + timedelta(seconds=1)).usable(now)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_key_store("mysql://x")
