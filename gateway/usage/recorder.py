"""The usage recorder: takes one record per request and gets it into the store, batched.

`submit()` is called at the end of every request, streaming ones included, so it only
appends to a deque and maybe sets an event: O(1), no I/O, no exception. A background
task does the rest:

* every `flush_interval_ms`, or as soon as `batch_size` records wait, it writes them in
  batches (one transaction each; the stores skip ids they already have, so a batch whose
  outcome was unknown is simply written again);
* when a write fails it retries with exponential backoff and jitter, and meanwhile moves
  waiting records to the spill file (`gateway.usage.spill`) batch by batch, so that a
  crash during an outage loses nothing already submitted before the last spill;
* once the store answers again it replays the spill file, then truncates it. A spill file
  left by a previous process is replayed the same way after `start()`;
* a batch that fails while the store still answers a ping is written again row by row:
  a row the store refuses twice on its own (bad data, not an outage) goes to the
  dead-letter file (`gateway.usage.dead_letter`) with an error line and `on_dead_letter`,
  so one poisoned record never blocks the records behind it (issue 19, item 1).

Memory is bounded by `max_buffer`. Past it (the store is down and the spill file cannot
be written, or there is none) records are lost, and that is logged as an error with the
count: never silently. `depth` is what is not yet durable in the store, in memory or on
disk, and is reported through `on_depth` (the app feeds `gateway_usage_queue_depth`);
`lag_s` is how long records have waited without the store taking any, for `/readyz` and,
through `on_lag` once per tick, `gateway_usage_lag_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.usage.dead_letter import DeadLetterFile, is_outage
from gateway.usage.record import UsageRecord
from gateway.usage.spill import SpillFile
from gateway.usage.store import UsageStore

__all__ = ["UsageRecorder"]

logger = logging.getLogger("gateway.usage")


class UsageRecorder:
    def __init__(
        self,
        store: UsageStore,
        *,
        flush_interval_ms: int,
        batch_size: int = 500,
        max_buffer: int = 100_000,
        spill_path: Path | None = None,
        on_depth: Callable[[int], None] | None = None,
        dead_letter_path: Path | None = None,
        on_dead_letter: Callable[[int], None] | None = None,
        on_lag: Callable[[float], None] | None = None,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        write_timeout_s: float = 30.0,
        close_timeout_s: float = 10.0,
    ) -> None:
        if flush_interval_ms <= 0 or batch_size <= 0 or max_buffer < batch_size:
            raise ValueError("need flush_interval_ms > 0 and 0 < batch_size <= max_buffer")
        self.store = store  # public: /readyz pings it
        self._interval_s = flush_interval_ms / 1000
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._spill_path = spill_path
        self._on_depth = on_depth
        self._dead_letters = DeadLetterFile(dead_letter_path) if dead_letter_path else None
        self._on_dead_letter = on_dead_letter
        self._on_lag = on_lag
        self.dead_lettered = 0  # records set aside since start
        self._progress_at = time.monotonic()  # last time the store took records, or none waited
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._write_timeout_s = write_timeout_s
        self._close_timeout_s = close_timeout_s

        self._buffer: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spill: SpillFile | None = None
        self._spilled = 0  # records in the spill file not yet replayed
        self._spilling = 0  # records on their way to the spill file right now
        self._replay_offset = 0
        self._failing = False
        self._spill_logged = False
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._closing = False
        self._closed = False
        self._lost = 0
        self._unreported_losses = 0
        self._last_loss_log = -math.inf

    @property
    def depth(self) -> int:
        """Records submitted but not yet durably in the store (memory plus spill file)."""
        return len(self._buffer) + self._spilling + self._spilled

    @property
    def lag_s(self) -> float:
        """Seconds records have waited without the store taking any; 0 when none wait."""
        if self.depth == 0:
            return 0.0
        return time.monotonic() - self._progress_at

    @property
    def lost(self) -> int:
        """Records given up on since start; each loss was logged as an error."""
        return self._lost

    def submit(self, record: UsageRecord) -> None:
        """Queue one record. Never blocks, never raises."""
        try:
            if self._closed:
                self._lose_on_submit("the usage recorder was already closed")
                return
            if len(self._buffer) + self._spilling >= self._max_buffer:
                self._lose_on_submit("the usage buffer is full and nothing can be spilled")
                return
            if not self._buffer and not self._spilling and not self._spilled:
                self._progress_at = time.monotonic()  # the first to wait: the lag starts now
            self._buffer.append(record)
            if len(self._buffer) % self._batch_size == 0:
                self._wake.set()
            self._report_depth()
        except Exception:  # the request is already answered; losing it must not fail it
            logger.exception("usage record %s could not be queued", getattr(record, "id", "?"))

    async def start(self) -> None:
        """Claim the spill file (replaying what it holds) and start the flusher."""
        if self._task is not None:
            raise RuntimeError("the usage recorder is already started")
        if self._spill_path is not None:
            try:
                spill, spilled = await asyncio.to_thread(_claim_spill, self._spill_path)
            except OSError as exc:
                logger.error(
                    "usage spill file %s cannot be used (%s); an outage of the usage store "
                    "will be buffered in memory only",
                    self._spill_path,
                    exc,
                )
            else:
                self._spill, self._spilled = spill, spilled
                if spilled:
                    logger.warning(
                        "usage spill file %s holds %d records from an earlier run; replaying them",
                        spill.path,
                        spilled,
                    )
        self._report_depth()
        self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def aclose(self) -> None:
        """Write (or spill) everything still waiting, within `close_timeout_s`, and stop."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self._close_timeout_s)
            except TimeoutError:
                logger.warning("usage store did not take the last records in time; spilling")
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._buffer:
            await self._spill_buffer()
        self._closed = True
        if self._buffer:
            reason = (
                "the usage store failed and there is no spill file"
                if self._spill is None
                else "the usage store and the spill file both failed"
            )
            self._lose(len(self._buffer), reason)
            self._buffer.clear()
        self._report_submit_losses("the usage buffer was full")
        if self._spill is not None:
            await asyncio.to_thread(self._spill.close)
        self._report_depth()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            timeout = self._interval_s
            if self._failing:
                # Never below the flush interval: with nothing to retry, a retry time in
                # the past would otherwise turn this loop into a busy wait.
                timeout = max(self._retry_at - loop.time(), self._interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._on_lag is not None:  # here, not per request: once a tick is enough
                self._on_lag(self.lag_s)
            if self._closing:
                break
            if self._failing and loop.time() < self._retry_at:
                if len(self._buffer) >= self._batch_size:
                    await self._spill_buffer()
                continue
            await self._drain()
        # Last pass: one attempt at the store for what is in memory; `aclose` spills the
        # rest (replayed at the next start) rather than hold up the shutdown.
        await self._write_buffer()

    async def _drain(self) -> None:
        # Memory first, then one spill batch at a time, so that replaying a long outage
        # never leaves fresh records waiting until the buffer overflows.
        while await self._write_buffer() and self._spill_pending() and not self._closing:
            if not await self._replay_batch():
                break
        if self._failing:
            await self._spill_buffer()

    async def _write_buffer(self) -> bool:
        while self._buffer:
            batch = list(itertools.islice(self._buffer, self._batch_size))
            if not await self._write(batch):
                return False
            # Only this task removes from the left, so these are still the batch's records.
            for _ in batch:
                self._buffer.popleft()
            self._report_depth()
        return True

    def _spill_pending(self) -> bool:
        # A replay offset past zero means the file still needs its final truncation.
        return self._spill is not None and (self._spilled > 0 or self._replay_offset > 0)

    async def _replay_batch(self) -> bool:
        """Replay the next batch of the spill file; False when it failed or is done."""
        spill = self._spill
        assert spill is not None
        records, offset, damaged = await asyncio.to_thread(
            spill.read, self._replay_offset, self._batch_size
        )
        if damaged:
            self._lose(damaged, f"unreadable lines in the spill file {spill.path}")
        if records and not await self._write(records):
            return False
        if records or damaged:
            self._replay_offset = offset
            self._spilled = max(0, self._spilled - len(records) - damaged)
            self._report_depth()
            return True
        # End of file. Only this task appends to it, so nothing came in since the read.
        await asyncio.to_thread(spill.truncate)
        self._replay_offset = 0
        self._spilled = 0
        self._report_depth()
        logger.info("usage spill file %s replayed into the store", spill.path)
        return False

    async def _spill_buffer(self) -> None:
        if self._spill is None or not self._buffer:
            return
        records = list(self._buffer)
        self._buffer.clear()
        self._spilling = len(records)
        try:
            await asyncio.to_thread(self._spill.append, records)
        except BaseException as exc:
            self._spilling = 0
            # Back to memory. If this was a cancellation (a shutdown out of time) the write
            # may still complete, and `aclose` spills these again: a duplicate line is
            # harmless, the stores skip ids they have. A lost line would not be.
            self._buffer.extendleft(reversed(records))
            if not isinstance(exc, OSError):
                raise
            # Keep them in memory while there is room; what does not fit is lost, loudly.
            excess = len(self._buffer) - self._max_buffer
            for _ in range(max(0, excess)):
                self._buffer.pop()
            logger.error("usage spill file %s cannot be written: %s", self._spill.path, exc)
            if excess > 0:
                self._lose(excess, "the usage buffer is full and the spill file failed")
        else:
            self._spilling = 0
            self._spilled += len(records)
            # Once per outage at warning level: an outage spills every batch.
            level = logging.DEBUG if self._spill_logged else logging.WARNING
            self._spill_logged = True
            logger.log(
                level,
                "usage store unavailable: %d records moved to %s",
                len(records),
                self._spill.path,
            )
        self._report_depth()

    async def _write(self, records: Sequence[UsageRecord]) -> bool:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self.store.write(records), self._write_timeout_s)
        except Exception as exc:  # any failure of the store is retried, whatever its type
            if not await self._isolate(records, exc):
                self._backoff_s = min(
                    self._retry_max_s, max(self._retry_min_s, self._backoff_s * 2)
                )
                # Jitter, so that a fleet does not retry in lockstep against a recovering store.
                self._retry_at = loop.time() + self._backoff_s * random.uniform(0.5, 1.0)
                if not self._failing:
                    logger.warning(
                        "usage store write failed (%s: %s); %d records waiting, retrying",
                        type(exc).__name__,
                        exc,
                        self.depth,
                    )
                self._failing = True
                return False
        if self._failing:
            logger.info("usage store is writable again; %d records waiting", self.depth)
        self._failing = False
        self._spill_logged = False
        self._backoff_s = 0.0
        self._progress_at = time.monotonic()
        return True

    async def _isolate(self, records: Sequence[UsageRecord], error: Exception) -> bool:
        """After a failed batch: True if every row is now stored or dead-lettered.

        False (an outage: retry the whole batch later) when the write timed out, the
        network failed (OSError) or the store does not answer a ping. Otherwise each row is
        written alone; a row that fails twice, not with a network error, while the store
        still answers is refused data, not an outage.
        """
        if is_outage(error) or not await self._store_answers():
            return False
        for record in records:
            for attempt in range(2):
                try:
                    await asyncio.wait_for(self.store.write([record]), self._write_timeout_s)
                except Exception as exc:
                    if is_outage(exc) or not await self._store_answers():
                        return False
                    if attempt == 1:
                        await self._dead_letter(record, exc)
                else:
                    break
        return True

    async def _store_answers(self) -> bool:
        try:
            await asyncio.wait_for(self.store.ping(), self._write_timeout_s)
        except Exception:
            return False
        return True

    async def _dead_letter(self, record: UsageRecord, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        where = "nowhere (no spill file is configured)"
        if self._dead_letters is not None:
            try:
                await asyncio.to_thread(self._dead_letters.append, record, reason)
            except OSError as write_error:
                where = f"nowhere ({self._dead_letters.path} failed: {write_error})"
            else:
                where = str(self._dead_letters.path)
        self.dead_lettered += 1
        # Ids and the error only: the record's own text fields may be what broke the store.
        logger.error(
            "usage record %s (request %r) refused by the usage store (%s); set aside to %s",
            record.id,
            record.request_id[:64],
            reason[:300],
            where,
        )
        if self._on_dead_letter is not None:
            try:
                self._on_dead_letter(1)
            except Exception:
                logger.exception("usage dead-letter callback failed")

    def _lose(self, count: int, reason: str) -> None:
        self._lost += count
        logger.error("%d usage records lost: %s (%d lost in total)", count, reason, self._lost)

    def _lose_on_submit(self, reason: str) -> None:
        # The hot path: one line a second at most while requests keep arriving into a
        # full buffer, each line counting every record since the last; `aclose` logs the
        # remainder.
        self._lost += 1
        self._unreported_losses += 1
        now = time.monotonic()
        if self._closed or now - self._last_loss_log >= 1.0:
            self._report_submit_losses(reason)
            self._last_loss_log = now

    def _report_submit_losses(self, reason: str) -> None:
        if self._unreported_losses:
            logger.error(
                "%d usage records lost: %s (%d lost in total)",
                self._unreported_losses,
                reason,
                self._lost,
            )
            self._unreported_losses = 0

    def _report_depth(self) -> None:
        if self._on_depth is None:
            return
        try:
            self._on_depth(self.depth)
        except Exception:
            logger.exception("usage queue depth callback failed")


def _claim_spill(path: Path) -> tuple[SpillFile, int]:
    spill = SpillFile.claim(path)
    return spill, spill.count()
