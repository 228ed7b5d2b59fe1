"""API keys: who is calling.

Keys are looked up by their sha256 digest, so the config never needs the plaintext and a
timing attack on a string comparison learns nothing useful (the lookup is a dict probe on a
digest of the attacker's own guess). Plaintext keys given as `key: ${ENV}` are hashed when
the config is loaded and never kept in logs, errors or metrics: only `key_id` is.

The index holds the config's keys and, when given a `KeySnapshot`, the key store's
(`source: store`, managed through the admin API). It is rebuilt whole and swapped in by
`gateway.keys.refresher` when the store's change counter moves, so a lookup is still
one dict probe: no store query per request. Expiry is the one thing checked at lookup
time, because a key can expire between two refreshes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.config import AuthConfig, LimitsFields
from gateway.keys.records import KeySnapshot, StoredKey, StoredTeam

logger = logging.getLogger("gateway.keys")

__all__ = ["KeyIndex", "Principal", "key_from_headers"]


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    team: str | None
    user: str | None
    models: frozenset[str] | None  # allow-list of public model names; None = all
    is_admin: bool
    limits: LimitsFields
    expires_at: float | None = None  # epoch seconds; refused from then on
    source: str = "config"  # config | store

    def may_use(self, *names: str) -> bool:
        return self.models is None or any(name in self.models for name in names)


class KeyIndex:
    """Digest -> Principal, built per config (and on SIGHUP) and per key store change."""

    def __init__(self, auth: AuthConfig, stored: KeySnapshot | None = None) -> None:
        admins = {digest.lower() for digest in auth.admin_keys_sha256}
        self._by_digest: dict[str, Principal] = {}
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
        for digest in admins - self._by_digest.keys():
            # An admin key without its own `keys` entry: a stable, non-secret id.
            self._by_digest[digest] = Principal(
                key_id=f"admin-{digest[:8]}",
                team=None,
                user=None,
                models=None,
                is_admin=True,
                limits=LimitsFields(),
            )

        if stored is not None:
            self._add_stored(auth, stored)
        self.version = stored.version if stored is not None else None
        self._expiring = any(p.expires_at is not None for p in self._by_digest.values())

    def _add_stored(self, auth: AuthConfig, stored: KeySnapshot) -> None:
        config_ids = {key.id for key in auth.keys}
        teams = {team.name: team for team in stored.teams}
        now = datetime.now(UTC)
        for key in stored.keys:
            if not key.usable(now):
                continue
            if key.id in config_ids or key.key_sha256 in self._by_digest:
                # The admin API refuses both; a key store shared by gateways with
                # different config files could still hold one. The config wins.
                logger.warning("stored key %r clashes with a config key; ignored", key.id)
                continue
            self._by_digest[key.key_sha256] = _stored_principal(key, teams.get(key.team or ""))
        # A store team's allow-list also binds the config keys of that team.
        for digest, principal in list(self._by_digest.items()):
            team = teams.get(principal.team or "")
            if principal.source == "config" and team is not None and team.models is not None:
                self._by_digest[digest] = _narrowed(principal, team.models)

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str) -> Principal | None:
        principal = self._by_digest.get(hashlib.sha256(key.encode()).hexdigest())
        # Only an index holding a key that expires pays for the clock read.
        if self._expiring and principal is not None and principal.expires_at is not None:
            return principal if time.time() < principal.expires_at else None
        return principal


def _allowed(
    key_models: Iterable[str] | None, team_models: Iterable[str] | None
) -> frozenset[str] | None:
    """Both allow-lists apply: a key may use what its own list and its team's allow."""
    if key_models is None and team_models is None:
        return None
    if key_models is None:
        return frozenset(team_models or ())
    if team_models is None:
        return frozenset(key_models)
    return frozenset(key_models) & frozenset(team_models)


def _stored_principal(key: StoredKey, team: StoredTeam | None) -> Principal:
    return Principal(
        key_id=key.id,
        team=key.team,
        user=key.user,
        models=_allowed(key.models, team.models if team is not None else None),
        is_admin=False,  # admin keys come from the config only
        limits=LimitsFields(rpm=key.rpm, tpm=key.tpm, budget_usd_monthly=key.budget_usd_monthly),
        expires_at=key.expires_at.timestamp() if key.expires_at is not None else None,
        source="store",
    )


def _narrowed(principal: Principal, team_models: Iterable[str]) -> Principal:
    return Principal(
        key_id=principal.key_id,
        team=principal.team,
        user=principal.user,
        models=_allowed(principal.models, team_models),
        is_admin=principal.is_admin,
        limits=principal.limits,
        expires_at=principal.expires_at,
        source=principal.source,
    )


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
