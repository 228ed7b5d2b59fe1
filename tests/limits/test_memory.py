"""The in-process store keeps only counters the sliding window can still read."""

from __future__ import annotations

from gateway.limits import Limiter
from gateway.limits.memory import MemoryCounterStore
from gateway.limits.policy import WINDOW_MS, Window
from tests.limits.conftest import T0, Clock, principal


async def test_memory_stays_bounded_with_many_keys(clock: Clock) -> None:
    store = MemoryCounterStore()
    limiter = Limiter(store, teams={}, spend=None, clock=clock)
    for n in range(5000):
        admission = await limiter.admit(principal(f"key{n}", rpm=10, tpm=1000))
        await limiter.charge(admission, tokens=7, cost_usd=None)
    assert len(store) == 10_000  # an rpm and a tpm counter per key

    clock.advance(60)  # next minute: last minute's counts still weigh, so all are kept
    await limiter.admit(principal("late", rpm=10))
    assert len(store) == 10_001

    clock.advance(60)  # two minutes on, the 5,000 keys' counts can no longer matter
    await limiter.admit(principal("later", rpm=10))
    assert len(store) == 2  # "late" (last minute) and "later"


async def test_a_counter_forgotten_by_the_sweep_starts_from_zero(clock: Clock) -> None:
    store = MemoryCounterStore()
    window = Window("k:app1:rpm", 2, count=True)
    now_ms = int(T0 * 1000)
    assert await store.admit([window], now_ms) is None
    assert await store.admit([window], now_ms) is None
    assert await store.admit([window], now_ms) is not None

    assert await store.admit([window], now_ms + 2 * WINDOW_MS) is None
    assert len(store) == 1


async def test_clock_stepping_back_keeps_the_counts(clock: Clock) -> None:
    store = MemoryCounterStore()
    window = Window("k:app1:rpm", 1, count=True)
    now_ms = int(T0 * 1000) + WINDOW_MS
    assert await store.admit([window], now_ms) is None
    blocked = await store.admit([window], now_ms - WINDOW_MS)  # NTP stepped a minute back
    assert blocked is not None
