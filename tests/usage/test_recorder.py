"""The recorder against a fake store that fails, hangs and recovers on command.

The fake sits at the `UsageStore` protocol, the edge the recorder owns, and counts every
successful write per id: "nothing lost, nothing twice" is then two exact assertions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.config import UsageConfig
from gateway.usage.record import UsageRecord
from gateway.usage.recorder import UsageRecorder
from gateway.usage.spill import encode_record
from tests.usage.helpers import eventually, make_record


class FakeStore:
    def __init__(self) -> None:
        self.written: Counter[str] = Counter()
        self.batches: list[int] = []
        self.attempts = 0
        self.fail_next = 0
        self.broken = False
        self.hang = False

    @property
    def count(self) -> int:
        return sum(self.written.values())

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        if self.broken:
            raise ConnectionError("store down")

    async def write(self, records: Sequence[UsageRecord]) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.broken or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise ConnectionError("store down")
        self.batches.append(len(records))
        self.written.update(record.id for record in records)

    async def query(
        self,
        *,
        group_by: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        raise AssertionError("the recorder never queries")

    async def spend(
        self, *, key_id: str | None = None, team: str | None = None, since: datetime
    ) -> Decimal:
        raise AssertionError("the recorder never asks for spend")


def _recorder(store: FakeStore, **options: Any) -> UsageRecorder:
    settings: dict[str, Any] = {
        "flush_interval_ms": 10,
        "batch_size": 10,
        "max_buffer": 1000,
        "retry_min_s": 0.01,
        "retry_max_s": 0.04,
        "close_timeout_s": 2.0,
    }
    settings.update(options)
    return UsageRecorder(store, **settings)


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


async def test_a_full_batch_is_written_without_waiting_for_the_tick() -> None:
    store = FakeStore()
    recorder = _recorder(store, flush_interval_ms=60_000)
    await recorder.start()
    for _ in range(9):
        recorder.submit(make_record())
    await asyncio.sleep(0.05)
    assert store.batches == []  # 9 < batch_size, and the tick is a minute away
    recorder.submit(make_record())
    await eventually(lambda: store.batches == [10], what="the full batch")
    for _ in range(3):
        recorder.submit(make_record())
    await asyncio.sleep(0.05)
    assert store.batches == [10]
    await recorder.aclose()
    assert store.batches == [10, 3]


async def test_a_partial_batch_is_written_on_the_tick() -> None:
    store = FakeStore()
    recorder = _recorder(store, flush_interval_ms=20, batch_size=500)
    await recorder.start()
    for _ in range(3):
        recorder.submit(make_record())
    await eventually(lambda: store.count == 3, within_s=1.0)
    assert store.batches == [3]
    await recorder.aclose()


async def test_close_flushes_what_waits() -> None:
    store = FakeStore()
    recorder = _recorder(store, flush_interval_ms=60_000, batch_size=100)
    await recorder.start()
    records = [make_record() for _ in range(7)]
    for record in records:
        recorder.submit(record)
    await recorder.aclose()
    assert store.written == Counter(r.id for r in records)
    await recorder.aclose()  # idempotent


async def test_a_store_that_fails_then_recovers_loses_nothing_and_doubles_nothing() -> None:
    store = FakeStore()
    store.fail_next = 4
    recorder = _recorder(store)
    await recorder.start()
    records = [make_record() for _ in range(55)]
    for record in records:
        recorder.submit(record)
    await eventually(lambda: store.count == 55, what="all records written")
    assert store.written == Counter(r.id for r in records)  # each exactly once
    assert store.attempts > len(store.batches)  # the failures did happen
    await recorder.aclose()
    assert recorder.depth == 0
    assert recorder.lost == 0


async def test_an_outage_spills_to_disk_and_the_file_is_replayed_when_the_store_is_back(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "usage.spill.jsonl"
    store = FakeStore()
    store.broken = True
    recorder = _recorder(store, spill_path=spill)
    await recorder.start()
    records = [make_record() for _ in range(43)]
    for record in records:
        recorder.submit(record)
    await eventually(lambda: spill.exists() and len(_lines(spill)) == 43, what="all spilled")
    assert recorder.depth == 43
    store.broken = False
    await eventually(lambda: store.count == 43, what="spill replayed")
    assert store.written == Counter(r.id for r in records)
    await eventually(lambda: recorder.depth == 0 and spill.stat().st_size == 0, what="truncated")
    await recorder.aclose()
    assert not spill.exists()  # an empty spill file is not left behind


async def test_a_spill_file_left_by_a_crash_is_replayed_at_the_next_start(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "usage.spill.jsonl"
    down = FakeStore()
    down.broken = True
    first = _recorder(down, spill_path=spill, flush_interval_ms=60_000, batch_size=100)
    await first.start()
    records = [make_record(cost_usd=Decimal("0.0000000123")) for _ in range(23)]
    for record in records:
        first.submit(record)
    await first.aclose()  # the store never came back: everything went to disk
    assert len(_lines(spill)) == 23
    assert first.lost == 0

    depths: list[int] = []
    up = FakeStore()
    second = _recorder(up, spill_path=spill, on_depth=depths.append)
    await second.start()
    assert depths[0] == 23
    await eventually(lambda: up.count == 23, what="replay at start")
    assert up.written == Counter(r.id for r in records)
    await second.aclose()
    assert depths[-1] == 0
    assert not spill.exists()


async def test_depth_counts_memory_and_disk(tmp_path: Path) -> None:
    depths: list[int] = []
    store = FakeStore()
    store.broken = True
    recorder = _recorder(store, on_depth=depths.append, spill_path=tmp_path / "s.jsonl")
    await recorder.start()
    for _ in range(3):
        recorder.submit(make_record())
    assert depths[-3:] == [1, 2, 3]
    for _ in range(12):
        recorder.submit(make_record())
    await eventually(lambda: recorder.depth == 15 and (tmp_path / "s.jsonl").exists())
    store.broken = False
    await eventually(lambda: depths[-1] == 0, what="depth back to 0")
    assert recorder.depth == 0
    await recorder.aclose()


async def test_submit_never_raises_and_losses_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_gauge(depth: int) -> None:
        raise RuntimeError("gauge exploded")

    store = FakeStore()
    store.broken = True
    recorder = _recorder(store, batch_size=5, max_buffer=10, on_depth=broken_gauge)
    await recorder.start()
    with caplog.at_level(logging.ERROR, logger="gateway.usage"):
        for _ in range(30):
            recorder.submit(make_record())
        await recorder.aclose()
        recorder.submit(make_record())  # after close: still no exception
    assert recorder.lost == 31  # 20 over the buffer, 10 at close without a spill file, 1 late
    losses = [r for r in caplog.records if "usage records lost" in r.getMessage()]
    # Not one line per record, but every record accounted for in some line.
    assert 2 <= len(losses) <= 4
    assert sum(int(r.getMessage().split()[0]) for r in losses) == 31
    assert losses[-1].getMessage().endswith("(31 lost in total)")


async def test_a_hanging_store_does_not_hold_up_shutdown(tmp_path: Path) -> None:
    spill = tmp_path / "s.jsonl"
    store = FakeStore()
    store.hang = True
    recorder = _recorder(store, spill_path=spill, close_timeout_s=0.2, write_timeout_s=60)
    await recorder.start()
    for _ in range(4):
        recorder.submit(make_record())
    await eventually(lambda: store.attempts > 0)
    await asyncio.wait_for(recorder.aclose(), timeout=2)
    assert len(_lines(spill)) == 4
    assert recorder.lost == 0


async def test_a_write_timeout_counts_as_a_failure(tmp_path: Path) -> None:
    store = FakeStore()
    store.hang = True
    recorder = _recorder(store, write_timeout_s=0.05)
    await recorder.start()
    records = [make_record() for _ in range(3)]
    for record in records:
        recorder.submit(record)
    await eventually(lambda: store.attempts >= 2, what="a retry after the timeout")
    store.hang = False
    await eventually(lambda: store.count == 3)
    assert store.written == Counter(r.id for r in records)
    await recorder.aclose()


async def test_damaged_spill_lines_are_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spill = tmp_path / "s.jsonl"
    good = [make_record(), make_record()]
    spill.write_bytes(
        encode_record(good[0]) + b"not json\n" + encode_record(good[1]) + b'{"id": "trunc'
    )
    store = FakeStore()
    recorder = _recorder(store, spill_path=spill)
    with caplog.at_level(logging.ERROR, logger="gateway.usage"):
        await recorder.start()
        await eventually(lambda: store.count == 2 and recorder.depth == 0)
        await recorder.aclose()
    assert store.written == Counter(r.id for r in good)
    assert recorder.lost == 2
    assert any("unreadable lines" in r.getMessage() for r in caplog.records)


async def test_two_workers_spill_apart_and_a_later_start_replays_both(tmp_path: Path) -> None:
    spill = tmp_path / "usage.spill.jsonl"
    down = FakeStore()
    down.broken = True
    workers = [_recorder(down, spill_path=spill, flush_interval_ms=60_000) for _ in range(2)]
    for worker in workers:
        await worker.start()
    records = [make_record() for _ in range(12)]
    for i, record in enumerate(records):
        workers[i % 2].submit(record)
    for worker in workers:
        await worker.aclose()
    assert _names(tmp_path) == [
        "usage.spill.jsonl",
        "usage.spill.jsonl.1",
    ]

    up = FakeStore()
    survivor = _recorder(up, spill_path=spill)
    await survivor.start()
    await eventually(lambda: up.count == 12, what="both files replayed")
    assert up.written == Counter(r.id for r in records)
    await survivor.aclose()
    assert _names(tmp_path) == []


def test_usage_config_carries_the_recorder_settings() -> None:
    config = UsageConfig()
    assert (config.batch_size, config.max_buffer) == (500, 100_000)
    assert config.spill_path == "gateway-usage.spill.jsonl"
    assert UsageConfig(spill_path=None).spill_path is None
    with pytest.raises(ValueError, match="max_buffer"):
        UsageConfig(batch_size=100, max_buffer=10)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        UsageRecorder(FakeStore(), flush_interval_ms=0)
    with pytest.raises(ValueError):
        UsageRecorder(FakeStore(), flush_interval_ms=100, batch_size=100, max_buffer=10)
