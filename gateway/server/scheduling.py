"""Where busy streams wait for their next slice of work: one slice per turn of the loop.

A stream fed by a fast upstream has dozens of events in hand at once, and translating
them all in one go held up every other request, so a stream yields after each short
slice of work (`gateway.server.streaming`). Yielding with `asyncio.sleep(0)` was not enough
under load: every busy stream then ran a slice in every turn of the event loop, a turn
lasted about (busy streams) x (slice), and a new request, which needs four or five
turns to reach its first token (read the request, call Bedrock, read the response
headers, the first event, write), waited that long at each of them.

Streams that pause queue in a `SliceLane` instead, and the lane lets one of them go per
turn. Everything else (requests starting, I/O callbacks, writes to clients) still runs
in every turn, so a new request goes ahead of the backlog of streams already answering.
Among themselves the streams stay round-robin, and none waits for more than one turn
per stream ahead of it.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["SliceLane"]


class SliceLane:
    """A queue of paused streams, released one per turn of the event loop."""

    __slots__ = ("_loop", "_waiting")

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        # The loop a release is scheduled on, or None when none is.
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def wait_turn(self) -> asyncio.Future[None]:
        """A future that completes when it is this caller's turn to run again."""
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self._waiting.append(turn)
        if self._loop is not loop:
            # (A release scheduled on another loop never runs if that loop has ended.)
            self._loop = loop
            loop.call_soon(self._release_one, loop)
        return turn

    def _release_one(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            return  # superseded by a release on the loop now in use
        waiting = self._waiting
        while waiting:
            turn = waiting.popleft()
            # Skipped: cancelled while waiting (the client left), or of an ended loop.
            if not turn.done() and turn.get_loop() is loop:
                turn.set_result(None)
                break
        if waiting:
            # Its task runs in the next turn; so does the next release, which wakes the
            # next stream for the turn after.
            loop.call_soon(self._release_one, loop)
        else:
            self._loop = None
