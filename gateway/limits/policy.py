"""What a counter store must do, and the sliding-window arithmetic both stores share.

Limits per minute are enforced with the *sliding-window approximation*: each counter is
two fixed 60 s buckets, the current one and the one before it, and the load "in the last
minute" is estimated as

    used = previous * (time left in the current bucket / 60 s) + current

i.e. the previous minute is assumed to have been spread evenly. Compared with plain fixed
windows this removes the cliff at every minute boundary, where a client could send a
full quota at 00:59 and another at 01:00, and it spreads retries instead of sending every
throttled client back at the same second. What it costs: two numbers per counter instead
of one, and an estimate instead of an exact count. Traffic bunched at the start of a
minute is weighed a little too long (for rpm, the first request of the next minute waits
at most `60 / limit` seconds past the boundary), traffic bunched at its end a little too
short. An exact sliding log would need one entry per request, or per token for tpm.

A window admits a request when `used + 1 <= limit`: room for one more request (rpm), or
for at least one more token (tpm). `wait_ms` answers the question a 429 must answer --
how long until that is true again if nobody else sends anything -- in closed form; the
Redis store runs the same formula in Lua, so both stores give the same `retry-after`.

Time is integer milliseconds from the `Limiter`'s clock everywhere (not the Redis
server's), so tests can move it and both stores round identically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = [
    "WINDOW_MS",
    "Blocked",
    "CounterStore",
    "CounterStoreError",
    "Window",
    "estimate",
    "month_start",
    "next_month_start",
    "wait_ms",
]

WINDOW_MS = 60_000


class CounterStoreError(Exception):
    """The store could not answer (unreachable, timed out, refused); the Limiter decides."""


@dataclass(frozen=True, slots=True)
class Window:
    """One per-minute limit to check on admission.

    `name` identifies the counter (owner and kind, e.g. `k:app1:rpm`); `count` says
    whether admitting adds 1 to it (rpm) or only checks it (tpm, which is charged with
    the real token count after the response, through `CounterStore.add`).
    """

    name: str
    limit: int
    count: bool


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why `admit` refused: `windows[index]` is full for at least `retry_after_ms` more."""

    index: int
    retry_after_ms: int


class CounterStore(Protocol):
    """Per-minute counters, local to a process or shared by a fleet.

    `admit` is all-or-nothing: a request refused by its team's limit must not use up
    its key's rpm, and two concurrent requests must not both take the last slot.
    """

    async def admit(self, windows: Sequence[Window], now_ms: int) -> Blocked | None:
        """If every window has room, count the request in those with `count` and return
        None; otherwise change nothing and return the first full window."""
        ...

    async def add(self, names: Sequence[str], amount: int, now_ms: int) -> None:
        """Add `amount` (tokens actually used) to each counter's current bucket."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


def estimate(previous: float, current: float, elapsed_ms: int) -> float:
    """The sliding-window estimate of what was used in the last minute."""
    return previous * (WINDOW_MS - elapsed_ms) / WINDOW_MS + current


def wait_ms(previous: float, current: float, limit: int, elapsed_ms: int) -> int:
    """Milliseconds until `estimate(...) + 1 <= limit`, for a window that is full now.

    Two cases. If the current bucket alone still leaves room, the wait is until enough
    of the previous bucket has slid out. Otherwise nothing helps before the next bucket
    starts; there the current bucket becomes the previous one and slides out in turn.
    Never less than 1 ms, so a refusal never says "retry after 0".
    """
    room = limit - 1 - current
    if room >= 0 and previous > 0:
        wait = (WINDOW_MS - elapsed_ms) - room * WINDOW_MS / previous
    else:
        after_boundary = WINDOW_MS - (limit - 1) * WINDOW_MS / current if current > 0 else 0.0
        wait = (WINDOW_MS - elapsed_ms) + max(0.0, after_boundary)
    return max(1, math.ceil(wait))


def month_start(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of `moment`'s calendar month (UTC): where budgets reset."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month_start(moment: datetime) -> datetime:
    """00:00 UTC on the 1st of the month after `moment`'s."""
    start = month_start(moment)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)
