"""`gateway.ids`: unique ids without a system call each, and none shared across a fork."""

from __future__ import annotations

import os
import random
import re
import time
import uuid

import pytest

from gateway.ids import new_id, new_record_id, new_uuid


def test_new_id_has_the_shape_of_a_uuid4_hex_and_does_not_repeat() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_new_uuid_is_a_valid_version_4_uuid() -> None:
    for _ in range(1_000):
        value = uuid.UUID(new_uuid())
        assert value.version == 4
        assert value.variant == uuid.RFC_4122


def test_record_ids_are_version_7_uuids_that_sort_by_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = []
    for _ in range(3):
        ids += [new_record_id() for _ in range(1_000)]
        time.sleep(0.002)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert before <= int(value[:12], 16) <= after
    # Later ids sort later (the ledger's index grows at its end), to the millisecond.
    stamps = [value[:12] for value in ids]
    assert stamps == sorted(stamps)
    assert ids[-1] > ids[0]


def test_seeding_the_global_random_module_does_not_repeat_ids() -> None:
    random.seed(1234)
    first = new_id()
    random.seed(1234)
    assert new_id() != first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.close(read_end)
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_id != new_id()
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
