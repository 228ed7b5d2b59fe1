"""The admin API under `/v1/admin/`: keys, teams and the audit log (admin keys only).

Thin HTTP over `gateway.keys.admin.KeyAdmin`, which the `keys` CLI uses too. Admin routes
call no model, so they are not billable: no usage record, no limits; authentication is
the same middleware as everywhere (401 without a valid key), and a valid key that is not
an admin key gets 403 in the OpenAI error shape. After a change the process reloads its
key index at once, so the worker that answered already serves the change; the others
pick it up within `auth.refresh_s` (`gateway.keys.refresher`).
"""

from __future__ import annotations

import re
from typing import Any, Protocol, TypeVar

import pydantic
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import InvalidRequestError, PermissionDeniedError
from gateway.pipeline.runtime import Gateway
from gateway.schemas.admin import (
    KEY_ID_PATTERN,
    KeyCreate,
    KeyPatch,
    TeamPut,
    admin_validation_error,
)
from gateway.server.bodies import json_response, read_json

__all__ = ["admin_routes"]

B = TypeVar("B", bound=BaseModel)


class KeyManager(Protocol):
    """What this module needs of `gateway.keys.admin.KeyAdmin`. A surface does not import
    `gateway.keys` (docs/architecture.md): `create_app` puts a factory for one, bound to
    the running config, in `app.state.key_admin`, and the refresher in
    `app.state.key_refresher`."""

    async def create_key(self, body: KeyCreate, *, actor: str) -> dict[str, Any]: ...
    async def list_keys(self) -> list[dict[str, Any]]: ...
    async def get_key(self, key_id: str) -> dict[str, Any]: ...
    async def update_key(self, key_id: str, body: KeyPatch, *, actor: str) -> dict[str, Any]: ...
    async def rotate_key(self, key_id: str, *, actor: str) -> dict[str, Any]: ...
    async def revoke_key(self, key_id: str, *, actor: str) -> dict[str, Any]: ...
    async def list_teams(self) -> list[dict[str, Any]]: ...
    async def put_team(self, name: str, body: TeamPut, *, actor: str) -> dict[str, Any]: ...
    async def audit(self, *, limit: int = 1000) -> list[dict[str, Any]]: ...


class Refresher(Protocol):
    async def refresh(self) -> bool: ...


_TEAM_NAME = re.compile(KEY_ID_PATTERN)


def _admin(request: Request) -> tuple[KeyManager, str]:
    principal = request.state.principal
    if not principal.is_admin:
        raise PermissionDeniedError("The admin API needs an admin key.", code="admin_only")
    admin: KeyManager = request.app.state.key_admin()
    return admin, str(principal.key_id)


async def _body(request: Request, model: type[B]) -> B:
    gateway: Gateway = request.app.state.gateway
    data = await read_json(
        request.scope, request.receive, gateway.runtime.config.server.max_body_bytes
    )
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        param, message = admin_validation_error(exc)
        raise InvalidRequestError(message, param=param) from None


async def _changed(request: Request, view: Any, *, status: int = 200) -> Response:
    refresher: Refresher = request.app.state.key_refresher
    await refresher.refresh()
    return json_response(view, status=status)


def _listing(data: list[dict[str, Any]]) -> Response:
    return json_response({"object": "list", "data": data})


async def create_key(request: Request) -> Response:
    admin, actor = _admin(request)
    body = await _body(request, KeyCreate)
    return await _changed(request, await admin.create_key(body, actor=actor), status=201)


async def list_keys(request: Request) -> Response:
    admin, _ = _admin(request)
    return _listing(await admin.list_keys())


async def get_key(request: Request) -> Response:
    admin, _ = _admin(request)
    return json_response(await admin.get_key(request.path_params["key_id"]))


async def patch_key(request: Request) -> Response:
    admin, actor = _admin(request)
    body = await _body(request, KeyPatch)
    view = await admin.update_key(request.path_params["key_id"], body, actor=actor)
    return await _changed(request, view)


async def delete_key(request: Request) -> Response:
    admin, actor = _admin(request)
    view = await admin.revoke_key(request.path_params["key_id"], actor=actor)
    return await _changed(request, view)


async def rotate_key(request: Request) -> Response:
    admin, actor = _admin(request)
    view = await admin.rotate_key(request.path_params["key_id"], actor=actor)
    return await _changed(request, view)


async def list_teams(request: Request) -> Response:
    admin, _ = _admin(request)
    return _listing(await admin.list_teams())


async def put_team(request: Request) -> Response:
    admin, actor = _admin(request)
    name = request.path_params["team"]
    if not _TEAM_NAME.fullmatch(name):
        raise InvalidRequestError(
            "team: 1 to 64 of the characters A-Z a-z 0-9 _ . : @ -", param="team"
        )
    body = await _body(request, TeamPut)
    return await _changed(request, await admin.put_team(name, body, actor=actor))


async def audit(request: Request) -> Response:
    admin, _ = _admin(request)
    return _listing(await admin.audit())


def admin_routes() -> list[Route]:
    return [
        Route("/v1/admin/keys", create_key, methods=["POST"]),
        Route("/v1/admin/keys", list_keys, methods=["GET"]),
        Route("/v1/admin/keys/{key_id}", get_key, methods=["GET"]),
        Route("/v1/admin/keys/{key_id}", patch_key, methods=["PATCH"]),
        Route("/v1/admin/keys/{key_id}", delete_key, methods=["DELETE"]),
        Route("/v1/admin/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/v1/admin/teams", list_teams, methods=["GET"]),
        Route("/v1/admin/teams/{team}", put_team, methods=["PUT"]),
        Route("/v1/admin/audit", audit, methods=["GET"]),
    ]
