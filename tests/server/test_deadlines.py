"""`gateway.server.deadlines`: coarse deadlines on one loop timer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.server.deadlines import TICK_S, Deadlines, coarse_timeout, deadlines


def test_a_deadline_fires_at_or_after_its_time_and_at_most_about_a_tick_late() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        table = deadlines()
        lateness: list[float] = []
        done = asyncio.Event()
        for delay in (0.0, 0.01, 0.03, 0.07):
            when = loop.time() + delay

            def fired(when: float = when) -> None:
                lateness.append(loop.time() - when)
                if len(lateness) == 4:
                    done.set()

            table.call_at(when, fired)
        async with asyncio.timeout(5):
            await done.wait()
        return lateness

    lateness = asyncio.run(main())
    assert all(late >= 0 for late in lateness), lateness
    assert all(late < TICK_S + 0.2 for late in lateness), lateness  # a loaded machine


def test_a_cancelled_deadline_never_fires_and_the_timer_stops_when_none_is_left() -> None:
    async def main() -> tuple[list[str], Deadlines]:
        table = deadlines()
        fired: list[str] = []
        handle = table.call_later(0.01, lambda: fired.append("cancelled"))
        table.call_later(0.02, lambda: fired.append("kept"))
        table.cancel(handle)
        table.cancel(handle)  # twice is harmless
        await asyncio.sleep(0.02 + 3 * TICK_S)
        return fired, table

    fired, table = asyncio.run(main())
    assert fired == ["kept"]
    assert table.pending() == 0
    assert table._timer is None


def test_a_failing_callback_is_reported_and_the_others_still_run() -> None:
    reported: list[dict[str, Any]] = []

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        table = deadlines()
        fired: list[str] = []
        when = loop.time() + 0.01

        def fail() -> None:
            raise ValueError("boom")

        table.call_at(when, fail)
        table.call_at(when, lambda: fired.append("after"))
        await asyncio.sleep(0.01 + 3 * TICK_S)
        return fired

    assert asyncio.run(main()) == ["after"]
    assert isinstance(reported[0]["exception"], ValueError)


def test_a_callback_can_set_a_new_deadline() -> None:
    async def main() -> list[int]:
        table = deadlines()
        fired: list[int] = []

        def again() -> None:
            fired.append(len(fired))
            if len(fired) < 3:
                table.call_later(0, again)

        table.call_later(0, again)
        await asyncio.sleep(10 * TICK_S)
        return fired

    assert asyncio.run(main()) == [0, 1, 2]


def test_each_loop_has_its_own_table() -> None:
    async def table() -> Deadlines:
        return deadlines()

    first, second = asyncio.run(table()), asyncio.run(table())
    assert first is not second


def test_coarse_timeout_ends_a_slow_block_in_timeout_error() -> None:
    async def main() -> None:
        with coarse_timeout(0.01):
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_coarse_timeout_leaves_a_quick_block_and_no_deadline_behind() -> None:
    async def main() -> tuple[str, int, bool]:
        with coarse_timeout(0.05):
            await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0.05 + 3 * TICK_S)  # no late cancellation arrives
        return "done", deadlines().pending(), task.cancelling() > 0

    assert asyncio.run(main()) == ("done", 0, False)


def test_coarse_timeout_none_sets_nothing() -> None:
    async def main() -> int:
        with coarse_timeout(None):
            await asyncio.sleep(0)
            return deadlines().pending()

    assert asyncio.run(main()) == 0


def test_someone_elses_cancellation_stays_a_cancellation() -> None:
    async def main() -> None:
        async def slow() -> None:
            with coarse_timeout(10):
                await asyncio.sleep(10)

        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert deadlines().pending() == 0

    asyncio.run(main())


def test_an_early_deadline_set_after_a_late_one_is_not_held_up() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        table = deadlines()
        late = table.call_later(30, lambda: None)
        fired = loop.create_future()
        started = loop.time()
        table.call_later(0.01, lambda: fired.set_result(loop.time()))
        async with asyncio.timeout(5):
            at: float = await fired
        table.cancel(late)
        return at - started

    assert asyncio.run(main()) < 0.01 + TICK_S + 0.2


def test_after_an_idle_spell_the_first_tick_does_not_walk_the_gap() -> None:
    async def main() -> int:
        table = deadlines()
        table._done -= 10_000_000  # as if the loop had been idle for days
        visited = 0

        class Counting(dict[int, dict[int, Any]]):
            def pop(self, key: int, default: Any = None) -> Any:
                nonlocal visited
                visited += 1
                return dict.pop(self, key, default)

        table._slots = Counting()
        fired = asyncio.Event()
        table.call_later(0, fired.set)
        async with asyncio.timeout(5):
            await fired.wait()
        return visited

    assert asyncio.run(main()) < 100


def test_a_deadline_cancelled_by_another_of_its_slot_does_not_run() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        table = deadlines()
        fired: list[str] = []
        when = loop.time() + 0.01
        later: list[Any] = []

        def first() -> None:
            fired.append("first")
            table.cancel(later[0])

        table.call_at(when, first)
        later.append(table.call_at(when, lambda: fired.append("cancelled")))
        await asyncio.sleep(0.01 + 3 * TICK_S)
        assert table.pending() == 0
        return fired

    assert asyncio.run(main()) == ["first"]
