"""Coarse deadlines for the request path: one loop timer for all of a loop's requests.

Every request sets up to three deadlines that almost never fire: reading its body
(`server.body_timeout_s`), each write to a client that stopped reading
(`server.write_timeout_s`), and when to start watching for a client that left while
Bedrock answers (`WATCH_AFTER_S`). As loop timers they cost a `TimerHandle` each, pushed
on the loop's heap and cancelled again (about 1.7 us with uvloop), and `asyncio.timeout`
about 5 us: together a tenth of a short request's own CPU.

Here a deadline is an entry in a dict of slots, one slot per `TICK_S` of loop time, and
one loop timer visits the slots that came due, every `TICK_S` while any deadline is
pending (40 calls a second under load, however many requests there are).
Setting and cancelling a deadline is two dict operations. A deadline fires at or after
its time, at most about `TICK_S` late: these are seconds-long limits (and a 50 ms start),
where that does not matter.

Callbacks run in the loop, as a timer's would; one that raises is reported to the loop's
exception handler and the others still run.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import weakref
from collections.abc import Callable
from types import TracebackType

__all__ = ["TICK_S", "Deadlines", "Handle", "coarse_timeout", "deadlines"]

TICK_S = 0.025

Handle = tuple[int, int]  # (slot, key)


class Deadlines:
    """The deadlines of one event loop (get it with `deadlines()`)."""

    __slots__ = ("__weakref__", "_done", "_keys", "_slots", "_timer", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # the loop whose time and timer these deadlines use
        self._slots: dict[int, dict[int, Callable[[], None]]] = {}
        self._keys = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._done = math.floor(loop.time() / TICK_S)  # every slot up to here has run

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        """Call `callback()` once the loop's time is `when` or later (at most ~`TICK_S`
        later), unless `cancel` is given the handle returned first."""
        if self._timer is None:
            # Idle until now, so nothing is pending: no slot up to now needs a visit.
            self._done = max(self._done, math.floor(self.loop.time() / TICK_S))
            self._timer = self.loop.call_at((self._done + 1) * TICK_S, self._tick)
        slot = max(math.ceil(when / TICK_S), self._done + 1)
        key = next(self._keys)
        pending = self._slots.get(slot)
        if pending is None:
            pending = self._slots[slot] = {}
        pending[key] = callback
        return slot, key

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        return self.call_at(self.loop.time() + delay, callback)

    def cancel(self, handle: Handle) -> None:
        """Forget a deadline; harmless when it has fired or was cancelled already."""
        slot, key = handle
        pending = self._slots.get(slot)
        if pending is not None:
            pending.pop(key, None)
            if not pending:
                del self._slots[slot]

    def pending(self) -> int:
        """How many deadlines are set (for tests)."""
        return sum(len(pending) for pending in self._slots.values())

    def _tick(self) -> None:
        """Run the slots that came due; tick again while any deadline is pending."""
        now = math.floor(self.loop.time() / TICK_S)
        for slot in range(self._done + 1, now + 1):
            self._done = slot  # a callback that sets a deadline now gets a later slot
            due = self._slots.get(slot)
            # Each entry leaves the slot as it runs: one cancelled by an earlier callback
            # of the same slot does not run, as with the loop's own timers.
            while due:
                callback = due.pop(next(iter(due)))
                try:
                    callback()
                except Exception as exc:  # as the loop does for a failing timer callback
                    self.loop.call_exception_handler(
                        {"message": "a deadline's callback failed", "exception": exc}
                    )
            self._slots.pop(slot, None)
        self._timer = None
        if self._slots:  # every TICK_S, not at the earliest slot: no search, no re-arming
            self._timer = self.loop.call_at((now + 1) * TICK_S, self._tick)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)
_last: Deadlines | None = None  # the one used last: almost always the running loop's


def deadlines() -> Deadlines:
    """The running loop's `Deadlines`, made on first use."""
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last.loop is loop:
        return last
    found = _by_loop.get(loop)
    if found is None:
        found = _by_loop[loop] = Deadlines(loop)
    _last = found
    return found


class coarse_timeout:
    """`with coarse_timeout(s):` in a task: `asyncio.timeout(s)` on `Deadlines`.

    When the deadline passes, the task is cancelled and the block ends in `TimeoutError`,
    as with `asyncio.timeout` (a cancellation from anyone else stays a cancellation). A
    plain `with`: entering and leaving awaits nothing. `None` sets no deadline.
    """

    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_table", "_task")

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._expired = False
        self._handle: Handle | None = None

    def __enter__(self) -> None:
        if self._delay is None:
            return
        task = asyncio.current_task()
        assert task is not None, "coarse_timeout is used inside a task"
        self._task = task
        self._cancelling = task.cancelling()
        self._table = deadlines()
        self._handle = self._table.call_later(self._delay, self._expire)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is None:
            return  # no deadline was set
        if not self._expired:
            self._table.cancel(self._handle)
            return
        # As `asyncio.timeout`: our cancellation is taken back whatever the block raised,
        # and it becomes a TimeoutError unless someone else cancelled the task too.
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()
