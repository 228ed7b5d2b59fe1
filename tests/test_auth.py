"""Key lookup by digest, disabled keys, admin keys and where the key is read from."""

from __future__ import annotations

import hashlib

import pytest

from gateway.config import AuthConfig
from gateway.keys.index import KeyIndex, key_from_headers

K2 = "k2-a-plaintext-key-long-enough-to-be-accepted"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def index() -> KeyIndex:
    return KeyIndex(
        AuthConfig.model_validate(
            {
                "keys": [
                    {"id": "app1", "key_sha256": sha("k1"), "team": "search", "user": "alice"},
                    {"id": "app2", "key": K2, "models": ["nova-micro"]},
                    {"id": "off", "key_sha256": sha("k3"), "disabled": True},
                    {"id": "boss", "key_sha256": sha("k4")},
                ],
                "admin_keys_sha256": [sha("k4"), sha("root")],
            }
        )
    )


def test_lookup_by_digest_and_plaintext() -> None:
    keys = index()
    p1 = keys.lookup("k1")
    assert p1 is not None and (p1.key_id, p1.team, p1.user, p1.is_admin) == (
        "app1",
        "search",
        "alice",
        False,
    )
    p2 = keys.lookup(K2)
    assert p2 is not None and p2.key_id == "app2"
    assert p2.may_use("nova-micro") and not p2.may_use("claude")


@pytest.mark.parametrize("key", ["k3", "nope", "", "K1", "k1 "])
def test_unknown_wrong_or_disabled_keys_are_refused(key: str) -> None:
    assert index().lookup(key) is None


def test_admin_keys() -> None:
    keys = index()
    boss = keys.lookup("k4")
    assert boss is not None and boss.key_id == "boss" and boss.is_admin
    root = keys.lookup("root")
    assert root is not None and root.is_admin and root.key_id == f"admin-{sha('root')[:8]}"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"authorization", b"Bearer abc")], "abc"),
        ([(b"authorization", b"bearer  abc ")], "abc"),
        ([(b"x-api-key", b"xyz")], "xyz"),
        ([(b"x-api-key", b"xyz"), (b"authorization", b"Bearer abc")], "abc"),
        ([(b"authorization", b"Basic abc")], None),
        ([(b"authorization", b"Bearer ")], None),
        ([], None),
    ],
)
def test_key_from_headers(headers: list[tuple[bytes, bytes]], expected: str | None) -> None:
    assert key_from_headers(headers) == expected
