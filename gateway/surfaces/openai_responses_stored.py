"""Stored responses at run time: the reasoning key, saving and loading conversations, and
`GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`; plus the
answer to Codex's WebSocket probe on `/v1/responses`.

`StoredResponses` is opened with the usage store in the app's lifespan (the rows and the
key live there, `gateway.responses.store` says why). A store that keeps no responses (a
test's fake) gets a key made for this process: encrypted reasoning then lasts as long as
the process, and nothing is stored.

Visibility: every lookup filters by the caller's `key_id`, and another key's response is
the same 404 as a missing one, so ids cannot be probed. These routes call no model: no
usage record, no limits.

Saving does not hold up the answer: the row is written in the background, and a
`previous_response_id` for a response whose write is still under way waits for it, so a
client that continues the instant a stream ended finds its response (on this process;
with several workers or replicas the write has had the time the client took to read the
last event and send its next request).

WebSocket mode (Codex with `supports_websockets = true` first opens a WebSocket on
`/v1/responses`) is refused with 426 Upgrade Required through the ASGI denial-response
extension: Codex then falls back to server-sent events at once, where 401/403/404 cost it
five reconnects and a 400 fails the run.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.responses.store import StoredResponse
from gateway.server.bodies import json_response

__all__ = ["StoredResponses", "responses_websocket"]

logger = logging.getLogger("gateway")

_PURGE_INTERVAL_S = 3600.0


class StoredResponses:
    def __init__(self) -> None:
        self._store: Any = None
        self._key: bytes | None = None
        self._pending: dict[str, asyncio.Task[Any]] = {}
        self._next_purge = 0.0

    async def start(self, store: Any) -> None:
        """Take the usage store (opened) and read, or make, the shared reasoning key."""
        self._store = store
        if self.persistent:
            self._key = await store.reasoning_key()
        else:
            self._key = secrets.token_bytes(32)

    @property
    def persistent(self) -> bool:
        return self._store is not None and hasattr(self._store, "put_response")

    @property
    def key(self) -> bytes:
        if self._key is None:
            raise RuntimeError("stored responses are not started")
        return self._key

    async def load(self, response_id: str, key_id: str) -> StoredResponse | None:
        task = self._pending.get(response_id)
        if task is not None:
            await asyncio.shield(task)
        if not self.persistent:
            return None
        stored: StoredResponse | None = await self._store.get_response(
            response_id, key_id=key_id, now=datetime.now(UTC)
        )
        return stored

    def save(self, stored: StoredResponse) -> None:
        """Write `stored` in the background (see the module docstring)."""
        if not self.persistent:
            return
        self._background(stored.id, self._store.put_response(stored))
        now = time.monotonic()
        if now >= self._next_purge:
            # Expired rows are invisible already; this reclaims their space, hourly.
            self._next_purge = now + _PURGE_INTERVAL_S
            self._background("purge", self._store.purge_responses(now=datetime.now(UTC)))

    def _background(self, name: str, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._pending[name] = task

        def done(finished: asyncio.Task[Any]) -> None:
            if self._pending.get(name) is finished:
                del self._pending[name]
            if not finished.cancelled() and finished.exception() is not None:
                logger.warning("stored responses: %s failed: %r", name, finished.exception())

        task.add_done_callback(done)

    # -- routes ---------------------------------------------------------------------------

    async def _found(self, request: Request) -> StoredResponse:
        response_id = request.path_params["response_id"]
        stored = await self.load(response_id, request.state.principal.key_id)
        if stored is None:
            raise _not_found(response_id)
        return stored

    async def get_response(self, request: Request) -> Response:
        return json_response((await self._found(request)).response)

    async def delete_response(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        key_id = request.state.principal.key_id
        if not self.persistent or not await self._store.delete_response(response_id, key_id=key_id):
            raise _not_found(response_id)
        return json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    async def list_input_items(self, request: Request) -> Response:
        stored = await self._found(request)
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
                raise InvalidRequestError(
                    f"No input item '{after}' in this response.", param="after"
                )
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


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"No response with id '{response_id}' for this API key.", code="response_not_found"
    )


async def responses_websocket(websocket: WebSocket) -> None:
    """426 for a WebSocket handshake on `/v1/responses` (see the module docstring); a
    server without the denial-response extension gets the handshake closed (a 403)."""
    error = GatewayError(
        "This gateway serves the Responses API over HTTP (server-sent events), not "
        "WebSocket; send POST /v1/responses.",
        code="websocket_not_supported",
    )
    error.status = 426
    error.type = "invalid_request_error"
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(json_response(error.to_openai(), status=426))
        return
    await websocket.close(code=1008)
