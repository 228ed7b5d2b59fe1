"""Stored responses in both usage stores (SQLite always, PostgreSQL when
GATEWAY_TEST_POSTGRES_URL is set): owner-only reads, deletes, expiry, the shared key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.responses.store import StoredResponse
from tests.usage.conftest import Backend

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def stored(response_id: str = "resp_1", *, key_id: str = "app1", days: int = 30) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        key_id=key_id,
        created_at=NOW,
        expires_at=NOW + timedelta(days=days),
        response={"id": response_id, "object": "response", "output": [{"type": "message"}]},
        input_items=[{"id": "msg_1", "type": "message", "role": "user", "content": "hi ✓"}],
        context=[{"type": "message", "role": "user", "content": "hi ✓"}],
    )


async def test_round_trip_and_owner_only(backend: Backend) -> None:
    store: Any = await backend.open()
    await store.put_response(stored())
    got = await store.get_response("resp_1", key_id="app1", now=NOW)
    assert got == stored()
    assert await store.get_response("resp_1", key_id="app2", now=NOW) is None
    assert await store.delete_response("resp_1", key_id="app2") is False
    assert await store.get_response("resp_1", key_id="app1", now=NOW) is not None
    assert await store.delete_response("resp_1", key_id="app1") is True
    assert await store.get_response("resp_1", key_id="app1", now=NOW) is None
    assert await store.delete_response("resp_1", key_id="app1") is False


async def test_expired_responses_are_gone_and_purged(backend: Backend) -> None:
    store: Any = await backend.open()
    await store.put_response(stored("resp_old", days=1))
    await store.put_response(stored("resp_new", days=30))
    later = NOW + timedelta(days=2)
    assert await store.get_response("resp_old", key_id="app1", now=later) is None
    assert await store.get_response("resp_new", key_id="app1", now=later) is not None
    assert await store.purge_responses(now=later) == 1
    assert await store.get_response("resp_old", key_id="app1", now=NOW) is None


async def test_every_store_on_one_database_shares_one_reasoning_key(backend: Backend) -> None:
    stores: list[Any] = [backend.new() for _ in range(3)]
    backend.opened.extend(stores)
    await asyncio.gather(*(s.open() for s in stores))
    keys = await asyncio.gather(*(s.reasoning_key() for s in stores))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    again = await backend.open()
    assert await again.reasoning_key() == keys[0]  # survives a restart
