"""Counters in this process: `limits.store: memory`.

Right for a single gateway process. With `--workers N` or several instances each process
counts alone, so a key's effective limit is N times its setting; use Redis there.

`admit` never awaits between reading and writing, so on one event loop it is atomic
without a lock. Memory stays bounded: a counter whose buckets are both older than the
previous minute holds nothing the estimate would use, and a sweep, at most once a
minute, drops every such counter. What is kept is proportional to the counters touched
in the last two minutes, not to all that ever were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.limits.policy import WINDOW_MS, Blocked, Window, estimate, wait_ms

__all__ = ["MemoryCounterStore"]


@dataclass(slots=True)
class _Buckets:
    bucket: int  # index of the minute `current` belongs to (now_ms // WINDOW_MS)
    current: int = 0
    previous: int = 0

    def roll(self, bucket: int) -> None:
        """Move to minute `bucket`: the current count becomes the previous one, or both
        are dropped when more than a minute has passed. A clock stepped back stays in the
        newer minute rather than forgetting what was counted."""
        if bucket <= self.bucket:
            return
        self.previous = self.current if bucket == self.bucket + 1 else 0
        self.current = 0
        self.bucket = bucket


class MemoryCounterStore:
    def __init__(self) -> None:
        self._counters: dict[str, _Buckets] = {}
        self._swept_bucket = 0

    def __len__(self) -> int:
        """Counters held right now; the bound the sweep keeps."""
        return len(self._counters)

    async def admit(self, windows: Sequence[Window], now_ms: int) -> Blocked | None:
        bucket, elapsed = divmod(now_ms, WINDOW_MS)
        self._sweep(bucket)
        for index, window in enumerate(windows):
            counter = self._counters.get(window.name)
            if counter is None:
                continue
            counter.roll(bucket)
            if estimate(counter.previous, counter.current, elapsed) + 1 > window.limit:
                wait = wait_ms(counter.previous, counter.current, window.limit, elapsed)
                return Blocked(index, wait)
        for window in windows:
            if window.count:
                self._get(window.name, bucket).current += 1
        return None

    async def add(self, names: Sequence[str], amount: int, now_ms: int) -> None:
        bucket = now_ms // WINDOW_MS
        self._sweep(bucket)
        for name in names:
            self._get(name, bucket).current += amount

    async def aclose(self) -> None:
        self._counters.clear()

    def _get(self, name: str, bucket: int) -> _Buckets:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = _Buckets(bucket)
        else:
            counter.roll(bucket)
        return counter

    def _sweep(self, bucket: int) -> None:
        if bucket == self._swept_bucket:
            return
        self._swept_bucket = bucket
        stale = [name for name, c in self._counters.items() if c.bucket < bucket - 1]
        for name in stale:
            del self._counters[name]
