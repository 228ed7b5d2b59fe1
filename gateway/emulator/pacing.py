"""Serving in time: paced frame writes, sleeps that end when the client leaves, and
deliberate disconnects.

Kept apart from routing because it is the only part of the emulator that deals with the
clock and with connection state; everything it sends was decided beforehand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.emulator.answers import StreamPlan, stream_plan
from gateway.emulator.plan import Script

__all__ = [
    "ClientGone",
    "EmulatedDisconnect",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "Watch",
    "install_log_filter",
    "send_plan",
    "send_stream",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class EmulatedDisconnect(Exception):
    """Raised on purpose after a partial answer, so the server drops the connection.

    ASGI has no "abort" message; an exception after the response started is the portable
    way to make a server close the socket mid-body. Its log record is filtered out.
    """


class _HideEmulatedDisconnects(logging.Filter):
    """Drop server log records whose exception is an `EmulatedDisconnect`, and only those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], EmulatedDisconnect))


def install_log_filter() -> None:
    """Keep uvicorn's error log clean of the disconnects a test asked for (idempotent)."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideEmulatedDisconnects) for f in server_log.filters):
        server_log.addFilter(_HideEmulatedDisconnects())


class ClientGone(Exception):
    """The client disconnected; there is nobody left to answer."""


class Watch:
    """Sleeps that end early when the client disconnects (so abandoned streams stop)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._gone: asyncio.Task[None] | None = None

    async def _wait_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._gone is None:
            # Started lazily: an unpaced answer never needs to listen for the client.
            self._gone = asyncio.ensure_future(self._wait_for_disconnect())
        done, _ = await asyncio.wait((self._gone,), timeout=seconds)
        if done:
            raise ClientGone

    def close(self) -> None:
        if self._gone is not None:
            self._gone.cancel()


async def send_stream(script: Script, start: Message, send: Send, watch: Watch) -> None:
    """Send frames as they fall due; frames with no pause between them share one write."""
    await send_plan(stream_plan(script), start, send, watch)


async def send_plan(plan: StreamPlan, start: Message, send: Send, watch: Watch) -> None:
    """`send_stream` for frames already planned (the Claude stream plans its own)."""
    await send(start)
    pending: list[bytes] = []
    for frame, pause in zip(plan.frames, plan.pauses, strict=True):
        if pause > 0:
            if pending:
                await send(
                    {"type": "http.response.body", "body": b"".join(pending), "more_body": True}
                )
                pending = []
            await watch.sleep(pause)
        pending.append(frame)
    if plan.drop_connection:
        if pending:
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
        raise EmulatedDisconnect
    await send({"type": "http.response.body", "body": b"".join(pending)})
