"""A circuit breaker per (model, region): a region that keeps throttling is skipped a while.

A model listed in several regions fails over to the next region after its retries in
one (`gateway.bedrock.retries`). Without memory, every request would first spend its
retries, and its share of the sleep budget, on the region that throttled the last
hundred requests too. After `THRESHOLD` throttles in a row a (model, region) is skipped
for `bedrock.region_cooldown_s`; the first answer from it closes the breaker again.

Only models that list several regions are tracked: for a model with one region there is
nowhere else to go, and skipping it would only turn a slow answer into a refusal. When
every region of a request is cooling down they are all tried anyway, in order: a region
that might answer beats a certain error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.bedrock.catalog import ResolvedModel

__all__ = ["THRESHOLD", "RegionBreaker"]

# Throttles in a row that open the breaker of a (model, region).
THRESHOLD = 3
# What opens the breaker: throttling, as the contract says ("3 throttles in a row"). Other
# failures still move the request on, but say less about the next minute of the region.
_TRIPS = frozenset({"ThrottlingException"})

_Key = tuple[str, str, str | None]


def _key(model: ResolvedModel) -> _Key:
    return (model.public_name, model.bedrock_id, model.region)


class RegionBreaker:
    """Process-wide; every request of a worker shares it (no lock: one event loop)."""

    def __init__(self, cooldown_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._streak: dict[_Key, int] = {}
        self._open_until: dict[_Key, float] = {}

    def available(self, candidates: Sequence[ResolvedModel]) -> Sequence[ResolvedModel]:
        """The candidates worth trying now, in order; all of them if every one is out."""
        if not self._open_until:
            return candidates
        now = self._clock()
        live = [c for c in candidates if not self._cooling(c, now)]
        return live if live else candidates

    def cooling(self, model: ResolvedModel) -> bool:
        return bool(self._open_until) and self._cooling(model, self._clock())

    def _cooling(self, model: ResolvedModel, now: float) -> bool:
        if not model.multi_region:
            return False
        until = self._open_until.get(_key(model))
        if until is None:
            return False
        if until <= now:
            del self._open_until[_key(model)]
            return False
        return True

    def failed(self, model: ResolvedModel, error_name: str) -> None:
        if not model.multi_region:
            return
        key = _key(model)
        if error_name not in _TRIPS:
            self._streak.pop(key, None)
            return
        streak = self._streak.get(key, 0) + 1
        if streak >= THRESHOLD:
            self._streak.pop(key, None)
            self._open_until[key] = self._clock() + self._cooldown_s
        else:
            self._streak[key] = streak

    def succeeded(self, model: ResolvedModel) -> None:
        if model.multi_region and self._streak:
            self._streak.pop(_key(model), None)
