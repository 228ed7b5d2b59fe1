"""Managing keys and teams: the rules shared by the admin API and the `keys` CLI.

Both front ends call these methods, so a rule holds whichever one an operator uses:
key ids are unique across the config file and the store (revoked ids are never reused),
config keys and config teams are read-only (409), an expiry already past at creation is
a 400, a revoked key cannot be changed, and the plaintext key leaves this module only in
the return value of `create_key` and `rotate_key`: it is never stored, logged or audited.

Keys are rendered as the contract's JSON objects here too, once, for the API, the CLI's
`--format json` and the usage page alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.config import GatewayConfig, KeyConfig
from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.keys.records import (
    StoredKey,
    StoredTeam,
    digest_of,
    format_ts,
    new_plaintext_key,
)
from gateway.keys.store import (
    DuplicateKeyError,
    KeyRevokedError,
    SqlKeyStore,
    UnknownKeyError,
)
from gateway.schemas.admin import KeyCreate, KeyPatch, TeamPut

__all__ = ["ConflictError", "KeyAdmin", "key_view"]


class ConflictError(GatewayError):
    """409: the change contradicts what exists (a taken id, a config key, a revoked key)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


def _money(value: Any) -> float | None:
    return None if value is None else float(value)


def key_view(key: StoredKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "key_sha256": key.key_sha256,
        "team": key.team,
        "user": key.user,
        "models": list(key.models) if key.models is not None else None,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_usd_monthly": _money(key.budget_usd_monthly),
        "expires_at": format_ts(key.expires_at) if key.expires_at else None,
        "disabled": key.disabled,
        "revoked_at": format_ts(key.revoked_at) if key.revoked_at else None,
        "source": "store",
        "created_at": format_ts(key.created_at),
        "updated_at": format_ts(key.updated_at),
    }


def _config_key_view(key: KeyConfig) -> dict[str, Any]:
    return {
        "id": key.id,
        "key_sha256": key.digest,
        "team": key.team,
        "user": key.user,
        "models": key.models,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_usd_monthly": _money(key.budget_usd_monthly),
        "expires_at": None,
        "disabled": key.disabled,
        "revoked_at": None,
        "source": "config",
        "created_at": None,
        "updated_at": None,
    }


def _team_view(name: str, fields: Any, models: Any, source: str) -> dict[str, Any]:
    return {
        "team": name,
        "rpm": fields.rpm,
        "tpm": fields.tpm,
        "budget_usd_monthly": _money(fields.budget_usd_monthly),
        "models": list(models) if models is not None else None,
        "source": source,
    }


class KeyAdmin:
    """Key and team management against one store, for one config (the running one)."""

    def __init__(self, store: SqlKeyStore, config: GatewayConfig) -> None:
        self.store = store
        self.config = config
        self._config_keys = {key.id: key for key in config.auth.keys}

    # -- keys ---------------------------------------------------------------------

    async def list_keys(self) -> list[dict[str, Any]]:
        snapshot = await self.store.snapshot()
        views = [_config_key_view(key) for key in self.config.auth.keys]
        views.extend(key_view(key) for key in snapshot.keys if key.id not in self._config_keys)
        return views

    async def get_key(self, key_id: str) -> dict[str, Any]:
        if key_id in self._config_keys:
            return _config_key_view(self._config_keys[key_id])
        key = await self.store.get_key(key_id)
        if key is None:
            raise NotFoundError(f"No key has id {key_id!r}.", code="key_not_found")
        return key_view(key)

    async def create_key(self, body: KeyCreate, *, actor: str) -> dict[str, Any]:
        key_id = body.id or f"key-{new_plaintext_key()[4:12].lower()}"
        if key_id in self._config_keys or key_id.startswith("admin-"):
            raise ConflictError(f"Key id {key_id!r} is taken by the config file.", param="id")
        now = datetime.now(UTC)
        if body.expires_at is not None and body.expires_at <= now:
            raise InvalidRequestError("expires_at is already past.", param="expires_at")
        self._check_models(body.models)
        plaintext = new_plaintext_key()
        key = StoredKey(
            id=key_id,
            key_sha256=digest_of(plaintext),
            team=body.team,
            user=body.user,
            models=tuple(body.models) if body.models is not None else None,
            rpm=body.rpm,
            tpm=body.tpm,
            budget_usd_monthly=body.budget_usd_monthly,
            expires_at=body.expires_at,
            created_at=now,
            updated_at=now,
        )
        try:
            key = await self.store.create_key(key, actor=actor)
        except DuplicateKeyError as exc:
            raise ConflictError(str(exc), param="id") from None
        return {"id": key.id, "key": plaintext, **key_view(key)}

    async def update_key(self, key_id: str, body: KeyPatch, *, actor: str) -> dict[str, Any]:
        self._refuse_config_key(key_id)
        try:
            changes = body.changes()
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="disabled") from None
        if "models" in changes:
            self._check_models(changes["models"])
        try:
            key = await self.store.update_key(key_id, changes, actor=actor)
        except UnknownKeyError as exc:
            raise NotFoundError(str(exc), code="key_not_found") from None
        except KeyRevokedError as exc:
            raise ConflictError(str(exc)) from None
        return key_view(key)

    async def rotate_key(self, key_id: str, *, actor: str) -> dict[str, Any]:
        self._refuse_config_key(key_id)
        plaintext = new_plaintext_key()
        try:
            key = await self.store.rotate_key(key_id, digest_of(plaintext), actor=actor)
        except UnknownKeyError as exc:
            raise NotFoundError(str(exc), code="key_not_found") from None
        except KeyRevokedError as exc:
            raise ConflictError(str(exc)) from None
        return {"id": key.id, "key": plaintext}

    async def revoke_key(self, key_id: str, *, actor: str) -> dict[str, Any]:
        self._refuse_config_key(key_id)
        try:
            key = await self.store.revoke_key(key_id, actor=actor)
        except UnknownKeyError as exc:
            raise NotFoundError(str(exc), code="key_not_found") from None
        return key_view(key)

    # -- teams and audit ----------------------------------------------------------

    async def list_teams(self) -> list[dict[str, Any]]:
        snapshot = await self.store.snapshot()
        views = [
            _team_view(name, fields, None, "config")
            for name, fields in self.config.auth.teams.items()
        ]
        views.extend(
            _team_view(team.name, team, team.models, "store")
            for team in snapshot.teams
            if team.name not in self.config.auth.teams
        )
        return sorted(views, key=lambda view: view["team"])

    async def put_team(self, name: str, body: TeamPut, *, actor: str) -> dict[str, Any]:
        if name in self.config.auth.teams:
            raise ConflictError(f"Team {name!r} is defined in the config file; edit it there.")
        self._check_models(body.models)
        team = StoredTeam(
            name=name,
            rpm=body.rpm,
            tpm=body.tpm,
            budget_usd_monthly=body.budget_usd_monthly,
            models=tuple(body.models) if body.models is not None else None,
        )
        team = await self.store.put_team(team, actor=actor)
        return _team_view(team.name, team, team.models, "store")

    async def audit(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        return [
            {
                "ts": format_ts(entry.ts),
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "changes": entry.changes,
            }
            for entry in await self.store.audit(limit=limit)
        ]

    # -- rules --------------------------------------------------------------------

    def _refuse_config_key(self, key_id: str) -> None:
        if key_id in self._config_keys:
            raise ConflictError(
                f"Key {key_id!r} is defined in the config file; it is read-only here."
            )

    def _check_models(self, models: Any) -> None:
        if models is None or self.config.allow_unlisted_models:
            return
        known = {m.name for m in self.config.models}
        known.update(alias for m in self.config.models for alias in m.aliases)
        unknown = [name for name in models if name not in known]
        if unknown:
            raise InvalidRequestError(
                f"models: unknown model name(s) {', '.join(map(repr, unknown))}.",
                param="models",
            )
