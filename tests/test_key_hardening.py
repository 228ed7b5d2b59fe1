"""Issue 19 items 2, 9, 14 (admin id), 15: keys that must not authenticate, secrets masked.

Each case here let a request through, or printed a secret, before the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.__main__ import main
from gateway.config import AuthConfig, ConfigError, masked_config, parse_config
from gateway.keys.index import KeyIndex

STRONG = "bgw-0123456789abcdefghijklmnopqrstuvwxyzABCD"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_a_disabled_admin_key_is_refused_not_promoted() -> None:
    # Item 2: disabled in auth.keys and listed in admin_keys_sha256 used to become the
    # unrestricted `admin-<digest8>` principal.
    index = KeyIndex(
        AuthConfig.model_validate(
            {
                "keys": [{"id": "boss", "key_sha256": sha("root-key"), "disabled": True}],
                "admin_keys_sha256": [sha("root-key"), sha("other-admin")],
            }
        )
    )
    assert index.lookup("root-key") is None
    other = index.lookup("other-admin")
    assert other is not None and other.is_admin  # admins without an entry still work


@pytest.mark.parametrize("key_id", ["admin-0badcafe", "admin-DEADBEEF"])
def test_a_key_id_shaped_like_a_synthetic_admin_id_is_refused(key_id: str) -> None:
    with pytest.raises(ConfigError, match=r"auth\.keys\[0\].*admin-<8 hex>"):
        parse_config(
            f"auth:\n  keys:\n    - {{id: {key_id}, key_sha256: '{sha('x' * 40)}'}}\n",
            {},
            source="c.yaml",
        )


@pytest.mark.parametrize("key_id", ["admin", "admin-0badcaf", "admin-0badcafe1", "my-admin-1"])
def test_other_admin_like_ids_are_fine(key_id: str) -> None:
    parse_config(f"auth:\n  keys:\n    - {{id: {key_id}, key: {STRONG}}}\n", {}, source="c")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("change-me", "placeholder"),
        ("CHANGE-ME", "placeholder"),
        ("changeme-changeme-changeme-changeme-1234", "placeholder"),
        ("replace-me-with-a-real-key-of-some-decent-length", "placeholder"),
        ("short-but-real-looking-K3y", "shorter than 32"),
        ("x" * 31, "shorter than 32"),
    ],
)
def test_weak_or_placeholder_plaintext_keys_stop_the_start(key: str, reason: str) -> None:
    # Item 15: `key: ${APP2_KEY:-change-me}` authenticated `Bearer change-me`.
    with pytest.raises(ConfigError, match=rf"auth\.keys\[0\]: .*{reason}"):
        parse_config("auth:\n  keys:\n    - {id: a, key: '${K}'}\n", {"K": key}, source="c")


def test_a_digest_of_a_placeholder_is_refused() -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        parse_config(
            f"auth:\n  keys:\n    - {{id: a, key_sha256: '{sha('change-me')}'}}\n", {}, source="c"
        )


def test_a_32_character_key_is_accepted() -> None:
    config = parse_config(
        "auth:\n  keys:\n    - {id: a, key: '${K}'}\n", {"K": "k" * 32}, source="c"
    )
    assert config.auth.keys[0].digest == sha("k" * 32)


@pytest.mark.parametrize(
    ("dsn", "masked", "secret"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0", "hunter2"),
        ("redis://hunter2@cache:6379/0", "redis://***@cache:6379/0", "hunter2"),
        ("postgresql://u:p@ss@db:5432/x", "postgresql://u:***@db:5432/x", "p@ss"),
        ("postgresql://u:pw@db/x", "postgresql://u:***@db/x", ":pw@"),
        (
            "postgresql://u@db/x?sslmode=require&password=hunter2",
            "postgresql://u@db/x?sslmode=require&password=***",
            "hunter2",
        ),
        ("rediss://h:6379/0?Password=hunter2", "rediss://h:6379/0?Password=***", "hunter2"),
        ("postgresql://u@db/x", "postgresql://u@db/x", None),
        ("sqlite:///gateway-usage.db", "sqlite:///gateway-usage.db", None),
    ],
)
def test_check_config_masks_every_url_password_form(
    dsn: str, masked: str, secret: str | None
) -> None:
    # Item 9.
    store = dsn if dsn.startswith(("redis", "rediss")) else "memory"
    usage = dsn if not dsn.startswith(("redis", "rediss")) else "sqlite:///u.db"
    config = parse_config(
        f"limits: {{store: '{store}'}}\nusage: {{store: '{usage}'}}\n", {}, source="c"
    )
    data = masked_config(config)
    shown = data["limits"]["store"] if store != "memory" else data["usage"]["store"]
    assert shown == masked
    if secret is not None:
        assert secret not in repr(data)


def test_check_config_command_prints_no_url_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "limits: {store: 'redis://:r3dis-pw@cache:6379/0'}\n"
        "usage: {store: 'postgresql://gw:p@ss@db/usage?password=q-pw'}\n"
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in ("r3dis-pw", "p@ss", "q-pw"):
        assert secret not in out


def test_a_disabled_or_revoked_store_key_listed_as_admin_is_refused() -> None:
    # Item 2 for keys from the key store: disabled or revoked there, yet its digest in
    # admin_keys_sha256, it must not become the synthetic `admin-<digest8>`.
    from datetime import UTC, datetime

    from gateway.keys.records import KeySnapshot, StoredKey, digest_of

    snapshot = KeySnapshot(
        version=1,
        keys=(
            StoredKey(id="off", key_sha256=digest_of("off-secret"), disabled=True),
            StoredKey(id="gone", key_sha256=digest_of("gone-secret"), revoked_at=datetime.now(UTC)),
        ),
        teams=(),
    )
    auth = AuthConfig.model_validate(
        {"admin_keys_sha256": [digest_of("off-secret"), digest_of("gone-secret"), sha("root")]}
    )
    index = KeyIndex(auth, snapshot)
    assert index.lookup("off-secret") is None
    assert index.lookup("gone-secret") is None
    root = index.lookup("root")
    assert root is not None and root.is_admin
