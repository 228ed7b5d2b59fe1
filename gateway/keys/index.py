"""API keys: who is calling.

Keys are looked up by their sha256 digest, so the config never needs the plaintext and a
timing attack on a string comparison learns nothing useful (the lookup is a dict probe on a
digest of the attacker's own guess). Plaintext keys given as `key: ${ENV}` are hashed when
the config is loaded and never kept in logs, errors or metrics: only `key_id` is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config import AuthConfig, LimitsFields

__all__ = ["KeyIndex", "Principal", "key_from_headers"]


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    team: str | None
    user: str | None
    models: frozenset[str] | None  # allow-list of public model names; None = all
    is_admin: bool
    limits: LimitsFields

    def may_use(self, *names: str) -> bool:
        return self.models is None or any(name in self.models for name in names)


class KeyIndex:
    """Digest -> Principal, built once per config (and again on SIGHUP)."""

    def __init__(self, auth: AuthConfig) -> None:
        admins = {digest.lower() for digest in auth.admin_keys_sha256}
        self._by_digest: dict[str, Principal] = {}
        # A disabled key is refused everywhere: also when its digest is listed as an admin,
        # which must not turn it into the unrestricted synthetic `admin-<digest8>` below.
        disabled = {key.digest for key in auth.keys if key.disabled}
        for key in auth.keys:
            if key.disabled:
                continue
            digest = key.digest
            self._by_digest[digest] = Principal(
                key_id=key.id,
                team=key.team,
                user=key.user,
                models=frozenset(key.models) if key.models is not None else None,
                is_admin=digest in admins,
                limits=LimitsFields(
                    rpm=key.rpm, tpm=key.tpm, budget_usd_monthly=key.budget_usd_monthly
                ),
            )
        for digest in admins - self._by_digest.keys() - disabled:
            # An admin key without its own `keys` entry: a stable, non-secret id.
            self._by_digest[digest] = Principal(
                key_id=f"admin-{digest[:8]}",
                team=None,
                user=None,
                models=None,
                is_admin=True,
                limits=LimitsFields(),
            )

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str) -> Principal | None:
        return self._by_digest.get(hashlib.sha256(key.encode()).hexdigest())


def key_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """`Authorization: Bearer <key>` (what the OpenAI SDK sends) or `x-api-key: <key>`."""
    api_key: str | None = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            api_key = value.decode("latin-1").strip() or None
    return api_key
