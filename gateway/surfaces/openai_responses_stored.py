"""`GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`, and the
answer to Codex's WebSocket probe on `GET /v1/responses`.

Stored responses are visible only to the key that made them: every lookup filters by the
caller's `key_id`, and another key's response is the same 404 as a missing one, so ids
cannot be probed. These routes call no model: no usage record, no limits.

WebSocket mode (Codex with `supports_websockets = true` first sends `GET /v1/responses`
with `Upgrade: websocket`) is answered 426 Upgrade Required: Codex then falls back to
server-sent events at once, where 401/403/404 cost it five reconnects and 400 fails the
run. The gateway serves the Responses API over HTTP only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.server.bodies import json_response
from gateway.surfaces.openai_responses import responses_state

__all__ = [
    "delete_response",
    "get_response",
    "list_input_items",
    "responses_probe",
    "responses_websocket",
]


async def _stored(request: Request) -> Any:
    response_id = request.path_params["response_id"]
    state = responses_state(request)
    stored = await state.load(response_id, request.state.principal.key_id)
    if stored is None:
        raise NotFoundError(
            f"No response with id '{response_id}' for this API key.", code="response_not_found"
        )
    return stored


async def get_response(request: Request) -> Response:
    stored = await _stored(request)
    return json_response(stored.response)


async def delete_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    state = responses_state(request)
    deleted = state.persistent and await state.store.delete_response(
        response_id, key_id=request.state.principal.key_id
    )
    if not deleted:
        raise NotFoundError(
            f"No response with id '{response_id}' for this API key.", code="response_not_found"
        )
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


async def list_input_items(request: Request) -> Response:
    stored = await _stored(request)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be 'asc' or 'desc'.", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequestError("limit must be an integer from 1 to 100.", param="limit")
    items = list(stored.input_items)
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequestError(f"No input item '{after}' in this response.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


def _websocket_error() -> GatewayError:
    error = GatewayError(
        "This gateway serves the Responses API over HTTP (server-sent events), not "
        "WebSocket; send POST /v1/responses.",
        code="websocket_not_supported",
    )
    error.status = 426
    error.type = "invalid_request_error"
    return error


async def responses_probe(request: Request) -> Response:
    if request.headers.get("upgrade", "").lower() == "websocket":
        error = _websocket_error()
        return json_response(error.to_openai(), status=426)
    raise _method_not_allowed()


def _method_not_allowed() -> GatewayError:
    error = GatewayError("Use POST /v1/responses to create a response.")
    error.status = 405
    error.type = "invalid_request_error"
    return error


async def responses_websocket(websocket: WebSocket) -> None:
    """The same 426 for a real WebSocket handshake (the server hands it to us as a
    `websocket` scope): sent with the ASGI denial-response extension where the server has
    it, else the handshake is closed (the server answers 403)."""
    error = _websocket_error()
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(json_response(error.to_openai(), status=426))
        return
    await websocket.close(code=1008)
