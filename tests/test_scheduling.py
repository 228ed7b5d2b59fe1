"""`gateway.server.scheduling.SliceLane`: paused streams go one per turn, round-robin.

The lane's promise is about turns of the event loop, so the tests count turns with a
probe task that yields with `sleep(0)` (one step per turn, as any request does between
its I/O) and log who ran in which order; no clocks.
"""

from __future__ import annotations

import asyncio

from gateway.server.scheduling import SliceLane

SLICES = 20


async def busy_stream(lane: SliceLane, name: str, log: list[str], slices: int = SLICES) -> None:
    for _ in range(slices):
        log.append(name)
        await lane.wait_turn()


async def probe(log: list[str], turns: int) -> None:
    for _ in range(turns):
        log.append("probe")
        await asyncio.sleep(0)


def runs_between_probes(log: list[str]) -> list[int]:
    """How many stream slices ran between each two consecutive probe steps."""
    counts, current, seen_probe = [], 0, False
    for entry in log:
        if entry == "probe":
            if seen_probe:
                counts.append(current)
            seen_probe, current = True, 0
        else:
            current += 1
    return counts


def test_one_paused_stream_runs_per_turn_and_other_work_runs_every_turn() -> None:
    lane = SliceLane()
    log: list[str] = []

    async def main() -> None:
        streams = [asyncio.ensure_future(busy_stream(lane, n, log)) for n in "abcd"]
        await asyncio.sleep(0)  # every stream has run its first slice and now waits
        await asyncio.gather(probe(log, 40), *streams)

    asyncio.run(main())

    between = runs_between_probes(log)
    # With `sleep(0)` in place of the lane, all four would run between probe steps.
    assert max(between) <= 1, between
    assert sum(between) >= 30  # and the streams still moved on in every turn
    # Among themselves the streams take turns in order: a, b, c, d, a, b, ...
    streams_only = [entry for entry in log if entry != "probe"]
    assert streams_only == list("abcd") * SLICES


def test_a_stream_cancelled_in_the_lane_is_skipped() -> None:
    lane = SliceLane()
    log: list[str] = []

    async def main() -> None:
        a = asyncio.ensure_future(busy_stream(lane, "a", log))
        b = asyncio.ensure_future(busy_stream(lane, "b", log))
        await asyncio.sleep(0)
        a.cancel()  # the client left while its stream waited for a turn
        await asyncio.wait_for(b, timeout=5)
        assert a.cancelled()

    asyncio.run(main())
    assert log.count("a") == 1 and log.count("b") == SLICES
    assert len(lane) == 0


def test_a_lane_outlives_its_event_loop() -> None:
    # One gateway may be served on a new loop (tests do it): a release still scheduled on a
    # loop that stopped must not leave the lane stuck, nor touch that loop's futures.
    lane = SliceLane()
    log: list[str] = []
    old = asyncio.new_event_loop()
    abandoned = old.create_task(busy_stream(lane, "old", log))
    old.call_soon(old.stop)
    old.run_forever()  # one turn: "old" ran a slice and waits; its release never runs
    old.close()
    assert len(lane) == 1 and not abandoned.done()

    asyncio.run(asyncio.wait_for(busy_stream(lane, "new", log, slices=3), timeout=5))
    assert log == ["old"] + ["new"] * 3
    assert len(lane) == 0
