"""Ids for requests, usage records and completions: unique, but no system call each.

`uuid.uuid4()` reads 16 bytes from `os.urandom` for every id, and a request takes three (its
request id, its usage record id, its completion id). On the VMs this gateway is measured
on, that `getrandom` call costs tens of microseconds under load, which showed up as 10-20%
of the gateway's own CPU per request. None of these ids is a secret or a capability: they
only have to be unique (the usage record id is the ledger's idempotency key). So they come
from one Mersenne Twister per process, seeded from `os.urandom` once and again in every
forked child, so that two workers never share a sequence.

A private generator rather than the `random` module's: tests (hypothesis) and libraries
may seed the global one, and a seeded generator would repeat record ids.

Usage record ids lead with the time (`new_record_id`, UUIDv7's layout): the ledger's
primary key index then grows at its end, as a log does. Random ids land anywhere in it,
so each insert touched a page of its own (read in, rewritten, logged): a third of the
SQLite store's CPU per record on a table of 100,000 rows, and more as it grows. PostgreSQL's
btree is no different.
"""

from __future__ import annotations

import os
import random
import time

__all__ = ["new_id", "new_record_id", "new_uuid"]

_generator = random.Random()
os.register_at_fork(after_in_child=_generator.seed)


def new_id() -> str:
    """128 random bits as 32 lowercase hex digits (the shape of `uuid4().hex`)."""
    return f"{_generator.getrandbits(128):032x}"


def new_record_id() -> str:
    """A UUIDv7 as 32 lowercase hex digits: Unix time in milliseconds (48 bits), the
    version and variant bits, then 74 random bits. Ids made later sort later, to the
    millisecond; within one they are in random order."""
    bits = (time.time_ns() // 1_000_000) << 80 | _generator.getrandbits(80)
    bits = (bits & ~(0xF000 << 64)) | (0x7000 << 64)  # version 7
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 9562 variant
    return f"{bits:032x}"


def new_uuid() -> str:
    """A version-4 UUID in its dashed form (`8-4-4-4-12`), for ids AWS spells that way."""
    bits = _generator.getrandbits(128)
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
