"""The write deadline: every send of a response is bounded, with one deadline per response.

The end-to-end case (a client that stops reading is dropped as `client_write_timeout`)
is in tests/server/test_slow_clients.py; these pin the timer's bookkeeping.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message

from gateway.pipeline.handler import _BoundedSend
from gateway.server.deadlines import Deadlines, deadlines

TIMEOUT_S = 0.2
BODY: Message = {"type": "http.response.body", "body": b"x", "more_body": True}


class Client:
    """An ASGI send whose calls wait as long as the test says, like a full socket buffer."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.sent = 0

    async def send(self, message: Message) -> None:
        wait = self.waits.pop(0) if self.waits else 0.0
        if wait:
            await asyncio.sleep(wait)
        self.sent += 1


async def test_a_send_that_waits_too_long_times_out_and_leaves_the_task_uncancelled() -> None:
    client = Client()
    bounded = _BoundedSend(client.send, TIMEOUT_S)
    client.waits = [0.0, 60.0]
    await bounded(BODY)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await bounded(BODY)
    assert TIMEOUT_S <= loop.time() - started < TIMEOUT_S + 0.5
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    bounded.close()


async def test_a_long_response_whose_sends_are_quick_is_not_cut() -> None:
    """The deadline is per send, not per response: the one timer lapses and comes back."""
    client = Client()
    bounded = _BoundedSend(client.send, TIMEOUT_S)
    for _ in range(6):  # 3 x the timeout in all
        await bounded(BODY)
        await asyncio.sleep(TIMEOUT_S / 2)
    assert client.sent == 6
    bounded.close()


async def test_the_timer_moves_to_the_deadline_of_the_send_in_progress() -> None:
    client = Client()
    bounded = _BoundedSend(client.send, TIMEOUT_S)
    await bounded(BODY)  # sets the timer for TIMEOUT_S from now
    await asyncio.sleep(TIMEOUT_S * 0.75)
    # This send is still waiting when the timer fires, but within its own deadline.
    client.waits = [TIMEOUT_S * 0.75]
    await bounded(BODY)
    client.waits = [60.0]
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await bounded(BODY)
    assert loop.time() - started >= TIMEOUT_S
    bounded.close()


async def test_someone_elses_cancellation_passes_through() -> None:
    client = Client()
    client.waits = [60.0]
    bounded = _BoundedSend(client.send, TIMEOUT_S)
    sending = asyncio.ensure_future(bounded(BODY))
    await asyncio.sleep(0.01)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    bounded.close()


async def test_one_deadline_serves_a_response_and_none_outlives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = deadlines()
    set_: list[Any] = []
    call_at = Deadlines.call_at

    def spy(self: Deadlines, when: float, callback: Any) -> Any:
        handle = call_at(self, when, callback)
        set_.append(handle)
        return handle

    monkeypatch.setattr(Deadlines, "call_at", spy)
    pending = table.pending()
    client = Client()
    bounded = _BoundedSend(client.send, 3600)
    for _ in range(50):
        await bounded(BODY)
    assert len(set_) == 1  # asyncio.timeout per send made 50 loop timers
    assert table.pending() == pending + 1
    bounded.close()
    assert table.pending() == pending
