"""One emulator server for the emulator tests, and helpers to write conversations."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.eventstream import EventStreamBuffer, EventStreamMessage

from gateway.emulator import create_emulator_app
from tests.servers import ServerThread, serve

# No retries: each test sees exactly the answer the emulator gave to one request.
NO_RETRIES = AioConfig(retries={"total_max_attempts": 1}, read_timeout=10, connect_timeout=5)


def user(text: str, script: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A one-message conversation, with an `@emulator` line when a script is given."""
    if script is not None:
        text = f"{text}\n@emulator {json.dumps(script)}"
    return [{"role": "user", "content": [{"text": text}]}]


def decode(data: bytes, step: int | None = None) -> list[EventStreamMessage]:
    """Decode with botocore, feeding `step` bytes at a time (all at once by default)."""
    buffer = EventStreamBuffer()
    messages: list[EventStreamMessage] = []
    size = step or len(data) or 1
    for start in range(0, len(data), size):
        buffer.add_data(data[start : start + size])
        messages.extend(buffer)
    return messages


@pytest.fixture(scope="package")
def server() -> Iterator[ServerThread]:
    with serve(create_emulator_app()) as running:
        yield running


@pytest.fixture(scope="package")
def session() -> AioSession:
    # One session: botocore loads the service model once, not once per test.
    session = AioSession()
    session.set_credentials("test", "test")
    session.set_config_variable("region", "us-east-1")
    return session


@pytest.fixture
async def bedrock(server: ServerThread, session: AioSession) -> AsyncIterator[Any]:
    async with session.create_client(
        "bedrock-runtime", endpoint_url=server.url, config=NO_RETRIES
    ) as client:
        yield client
