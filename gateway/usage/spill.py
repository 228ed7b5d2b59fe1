"""The spill file: usage records the store could not take yet, kept on local disk.

When the usage store is down, the recorder appends records here (JSON lines, one record
each, fsync'd before they leave memory) and replays them once the store answers again;
a file left behind by a crash is replayed at the next start. Every method blocks, so the
recorder calls them through `asyncio.to_thread`, never on the event loop.

With `--workers N` several processes start from the same configured path, and two of them
appending to, replaying and truncating one file would lose records. So each process
*claims* a file with an exclusive `flock` held for its lifetime: the configured path if it
is free, else `<path>.1`, `<path>.2`, ... A claim also adopts orphans, files of the same
family that nobody holds (their process died, or the fleet got smaller): their lines are
appended to the claimed file and the orphan removed, so every spilled record is replayed
by someone. A crash between the copy and the removal means some records are replayed
twice, which the stores' idempotent writes absorb.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.usage.record import RECORD_FIELDS, UsageRecord

if sys.platform != "win32":
    import fcntl

__all__ = ["SpillFile", "decode_record", "encode_record"]

_READ_CHUNK = 1 << 16
_MAX_SIBLINGS = 1024


def encode_record(record: UsageRecord) -> bytes:
    """One JSON line; `ts` as ISO 8601 and `cost_usd` as a string, so nothing is rounded."""
    row = record.to_row()
    row["ts"] = record.ts.isoformat()
    row["cost_usd"] = None if record.cost_usd is None else str(record.cost_usd)
    # ASCII with escapes: any string, even one holding a lone surrogate, has a line here;
    # an encoding error would otherwise stop the recorder, not just lose one record.
    return json.dumps(row, separators=(",", ":")).encode("ascii") + b"\n"


# Fields added to the record after the first release, with the value a line spilled by an
# older gateway stands for: a spill file survives an upgrade and is replayed by the new one.
_ADDED_LATER: dict[str, Any] = {
    "service_tier": None,
    "cache_write_1h_tokens": 0,
    "region": None,
    "guardrail_id": None,
}


def decode_record(line: bytes) -> UsageRecord:
    """The inverse of `encode_record`; raises ValueError (or KeyError) on a damaged line."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a spilled record must be a JSON object")
    fields: dict[str, Any] = {
        name: data[name] if name in data else _ADDED_LATER[name] for name in RECORD_FIELDS
    }
    fields["ts"] = datetime.fromisoformat(fields["ts"])
    if fields["cost_usd"] is not None:
        fields["cost_usd"] = Decimal(fields["cost_usd"])
    return UsageRecord(**fields)


class SpillFile:
    """A claimed spill file: append records, read them back by offset, truncate."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        # The recorder runs one operation at a time, except when a shutdown cancels a
        # write that its thread then finishes beside the next one: never interleave them.
        self._lock = threading.Lock()

    @classmethod
    def claim(cls, base: Path) -> SpillFile:
        """Lock the first free file of `base`'s family and adopt unheld siblings."""
        base.parent.mkdir(parents=True, exist_ok=True)
        for index in range(_MAX_SIBLINGS):
            path = base if index == 0 else base.with_name(f"{base.name}.{index}")
            fd = _open_locked(path, create=True)
            if fd is not None:
                break
        else:
            raise OSError(f"no free spill file next to {base} ({_MAX_SIBLINGS} are held)")
        spill = cls(path, fd)
        try:
            _sync_directory(path.parent)
            spill._terminate_last_line()
            for sibling in _siblings(base):
                if sibling != path:
                    spill._adopt(sibling)
        except BaseException:
            spill.close()
            raise
        return spill

    def append(self, records: Sequence[UsageRecord]) -> None:
        """Write and fsync; on failure the file is cut back to where it was."""
        data = b"".join(encode_record(record) for record in records)
        with self._lock:
            size = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, data)
                os.fsync(self._fd)
            except OSError:
                # A half-written line would glue itself to the next record and spoil both.
                os.ftruncate(self._fd, size)
                raise

    def read(self, offset: int, limit: int) -> tuple[list[UsageRecord], int, int]:
        """Up to `limit` records from byte `offset`: (records, next offset, damaged lines)."""
        with self._lock:
            return self._read(offset, limit)

    def _read(self, offset: int, limit: int) -> tuple[list[UsageRecord], int, int]:
        records: list[UsageRecord] = []
        damaged = 0
        buffer = b""
        position = offset
        while len(records) + damaged < limit:
            chunk = os.pread(self._fd, _READ_CHUNK, position + len(buffer))
            if not chunk:
                if buffer:  # a last line without its newline: a crash mid-write
                    damaged += 1
                    position += len(buffer)
                break
            buffer += chunk
            while len(records) + damaged < limit:
                end = buffer.find(b"\n")
                if end < 0:
                    break
                line, buffer = buffer[:end], buffer[end + 1 :]
                position += end + 1
                if not line.strip():
                    continue
                try:
                    records.append(decode_record(line))
                except (ValueError, KeyError, TypeError):
                    damaged += 1
        return records, position, damaged

    def count(self) -> int:
        """Non-blank lines in the file: the records waiting for replay."""
        with self._lock:
            return self._count()

    def _count(self) -> int:
        lines = 0
        position = 0
        tail = b""
        while chunk := os.pread(self._fd, _READ_CHUNK, position):
            position += len(chunk)
            parts = (tail + chunk).split(b"\n")
            tail = parts.pop()
            lines += sum(1 for part in parts if part.strip())
        return lines + (1 if tail.strip() else 0)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def truncate(self) -> None:
        """Empty the file once every record in it is safely in the store."""
        with self._lock:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)

    def close(self) -> None:
        """Release the claim; an empty file is removed rather than left lying around."""
        with self._lock:
            fd, self._fd = self._fd, -1
            if fd < 0:
                return
            try:
                if os.fstat(fd).st_size == 0:
                    self.path.unlink(missing_ok=True)
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def _terminate_last_line(self) -> None:
        size = self.size()
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            _write_all(self._fd, b"\n")
            os.fsync(self._fd)

    def _adopt(self, orphan: Path) -> None:
        fd = _open_locked(orphan, create=False)
        if fd is None:
            return  # another live process holds it
        try:
            size = os.fstat(fd).st_size
            position = 0
            if size:
                self._terminate_last_line()
                while chunk := os.pread(fd, _READ_CHUNK, position):
                    _write_all(self._fd, chunk)
                    position += len(chunk)
                os.fsync(self._fd)
                self._terminate_last_line()
            orphan.unlink()
            _sync_directory(orphan.parent)
        finally:
            os.close(fd)


def _siblings(base: Path) -> list[Path]:
    pattern = re.compile(re.escape(base.name) + r"(\.\d+)?")
    return sorted(p for p in base.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def _open_locked(path: Path, *, create: bool) -> int | None:
    """An fd holding an exclusive lock on `path`, or None if another process holds it."""
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o600)  # records name users: keep them private
        except FileNotFoundError:
            return None
        if not _try_lock(fd):
            os.close(fd)
            return None
        # Between open and lock another process may have adopted and removed the file;
        # a lock on an unlinked inode protects nothing, so check we hold the live one.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not create:
            return None


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        return True  # no flock: a single process per spill path is the operator's job
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    # A new or removed file is durable only once its directory entry is.
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
