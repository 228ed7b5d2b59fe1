"""The dead-letter file: usage records a store refused on their own, set aside for a human.

A record that fails alone, while the store answers and takes the records around it, is not
an outage: retrying it for ever jammed the whole ledger behind it (issue 19, item 1). The
recorder appends it here, with the store's error, and moves on. The file is JSON lines, one
`{"record": {...}, "error": "..."}` each, in the spill file's record encoding, so an
operator can fix a line and feed it back; nothing replays it automatically.

`is_outage` is how the recorder tells the two apart: an error that is about the store
(network, timeouts, a full disk, a shutdown) is retried as an outage; only what is left
(the driver refusing the row's data) can send a record here.

Several worker processes may share the path: each append is one `write()` on an
`O_APPEND` descriptor, which the kernel keeps whole for a local file. Blocking: the
recorder calls `append` through `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from gateway.usage.record import UsageRecord
from gateway.usage.spill import encode_record

__all__ = ["DeadLetterFile", "dead_letter_path", "is_outage"]


def dead_letter_path(spill_path: Path) -> Path:
    """Next to the spill file, under a name its `<path>.<n>` siblings never take."""
    return spill_path.with_name(spill_path.name + ".dead-letter")


class DeadLetterFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: UsageRecord, error: str) -> None:
        """Append one record with the reason it was refused, and fsync."""
        line = json.dumps(
            {"record": json.loads(encode_record(record)), "error": error[:1000]},
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode("ascii")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


# PostgreSQL error classes that are about the server, not the row: connection (08),
# transaction rollback (40), insufficient resources such as a full disk (53), object not in
# prerequisite state (55), operator intervention (57), system error (58), internal (XX).
# A refused row is class 22 (data exception: NUL, bad encoding) or 54 (a value too large
# for an index).
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})


def is_outage(exc: Exception) -> bool:
    """Whether a failed write says the store is unwell, rather than that a row is bad.

    Timeouts, network failures (ConnectionError is an OSError), SQLite's OperationalError
    (locked, disk full, I/O error) and the PostgreSQL classes above are retried as an
    outage: a full disk must not send every record to the dead-letter file.
    """
    if isinstance(exc, TimeoutError | OSError | sqlite3.OperationalError):
        return True
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in _OUTAGE_SQLSTATE_CLASSES
