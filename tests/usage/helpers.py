"""Helpers shared by the usage tests: a record factory and a bounded poll."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.usage.record import UsageRecord

_sequence = itertools.count()


def make_record(**fields: Any) -> UsageRecord:
    """A successful chat request with small, distinct numbers; override what matters."""
    n = next(_sequence)
    values: dict[str, Any] = {
        "id": f"rec-{uuid.uuid4().hex}",
        "ts": datetime(2026, 11, 2, 12, 0, tzinfo=UTC),
        "request_id": f"req-{n}",
        "route": "/v1/chat/completions",
        "key_id": "app1",
        "team": "search",
        "user": "alice",
        "end_user": None,
        "model": "claude-3-5-haiku",
        "bedrock_model_id": "anthropic.claude-3-5-haiku-20241022-v1:0",
        "status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": Decimal("0.0000280000"),
        "latency_ms": 12.5,
    }
    values.update(fields)
    return UsageRecord(**values)


async def eventually(
    predicate: Callable[[], bool], *, within_s: float = 3.0, what: str = "condition"
) -> None:
    """Poll until `predicate()` holds; fail the test after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within_s}s")
        await asyncio.sleep(0.005)
