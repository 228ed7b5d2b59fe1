"""The key index over config keys and a key store snapshot: what authenticates, with
which allow-list, and what is refused (disabled, revoked, expired, clashing)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from gateway.config import AuthConfig
from gateway.keys.index import KeyIndex
from gateway.keys.records import KeySnapshot, StoredKey, StoredTeam, digest_of


def auth() -> AuthConfig:
    return AuthConfig.model_validate(
        {
            "keys": [
                {"id": "cfg", "key_sha256": digest_of("cfg-secret"), "team": "mobile"},
                {"id": "cfg2", "key_sha256": digest_of("cfg2-secret"), "models": ["a", "b"]},
            ],
            "admin_keys_sha256": [digest_of("admin-secret")],
        }
    )


def stored(key_id: str, **fields: object) -> StoredKey:
    return StoredKey(id=key_id, key_sha256=digest_of(key_id + "-secret"), **fields)  # type: ignore[arg-type]


def test_config_only_index_is_unchanged() -> None:
    index = KeyIndex(auth())
    principal = index.lookup("cfg-secret")
    assert principal is not None and principal.source == "config" and principal.models is None
    assert index.lookup("admin-secret") is not None
    assert index.version is None


def test_stored_keys_join_and_unusable_ones_do_not() -> None:
    now = datetime.now(UTC)
    snapshot = KeySnapshot(
        version=7,
        keys=(
            stored("live", team="mobile", rpm=3),
            stored("off", disabled=True),
            stored("gone", revoked_at=now),
            stored("old", expires_at=now - timedelta(seconds=1)),
            stored("cfg"),  # clashes with a config key id: the config wins
        ),
        teams=(StoredTeam(name="mobile", models=("a",)),),
    )
    index = KeyIndex(auth(), snapshot)
    live = index.lookup("live-secret")
    assert live is not None and live.source == "store" and live.limits.rpm == 3
    assert live.models == frozenset({"a"}) and not live.is_admin
    for secret in ("off-secret", "gone-secret", "old-secret"):
        assert index.lookup(secret) is None
    # The config key of a store team is bound by that team's allow-list too.
    cfg = index.lookup("cfg-secret")
    assert cfg is not None and cfg.models == frozenset({"a"})
    assert index.version == 7


def test_a_key_expiring_between_refreshes_is_refused_at_lookup() -> None:
    soon = datetime.now(UTC) + timedelta(milliseconds=200)
    index = KeyIndex(auth(), KeySnapshot(version=1, keys=(stored("brief", expires_at=soon),)))
    assert index.lookup("brief-secret") is not None
    time.sleep(0.25)
    assert index.lookup("brief-secret") is None


def test_allow_lists_intersect() -> None:
    snapshot = KeySnapshot(
        version=1,
        keys=(stored("k", team="t", models=("a", "b")),),
        teams=(StoredTeam(name="t", models=("b", "c")),),
    )
    principal = KeyIndex(auth(), snapshot).lookup("k-secret")
    assert principal is not None and principal.models == frozenset({"b"})
