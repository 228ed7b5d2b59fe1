"""`gateway.server.bodies.read_json`: size and nesting limits on request bodies."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from gateway.errors import InvalidRequestError, PayloadTooLargeError
from gateway.server.bodies import MAX_NESTING, read_json


def read(
    body: bytes, limit: int = 1_000_000, headers: list[tuple[bytes, bytes]] | None = None
) -> object:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or []}
    return asyncio.run(read_json(scope, receive, limit))


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


def test_a_body_nested_to_the_limit_is_read() -> None:
    assert isinstance(read(nested(MAX_NESTING)), dict)


def test_one_level_deeper_is_a_400_that_says_so() -> None:
    with pytest.raises(InvalidRequestError, match=f"nested more than {MAX_NESTING} levels"):
        read(nested(MAX_NESTING + 1))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "{[" * (MAX_NESTING * 4)
    assert read(b'{"messages": [{"content": "' + text.encode() + b'"}]}') == {
        "messages": [{"content": text}]
    }


def test_a_body_over_the_limit_is_a_413() -> None:
    with pytest.raises(PayloadTooLargeError):
        read(b'{"a": "' + b"x" * 100 + b'"}', limit=50)


@pytest.mark.parametrize("length", [b"11", b"99999999999999999999", b"9" * 5000])
def test_a_declared_length_over_the_limit_is_a_413_before_reading(length: bytes) -> None:
    with pytest.raises(PayloadTooLargeError):
        read(b'{"a": 1}', limit=10, headers=[(b"content-length", length)])


def test_the_body_is_joined_from_its_messages_and_a_disconnect_ends_it() -> None:
    from starlette.requests import ClientDisconnect

    def reader(messages: list[Message]) -> object:
        queue = list(messages)

        async def receive() -> Message:
            return queue.pop(0)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
        return asyncio.run(read_json(scope, receive, 1_000, timeout_s=5))

    parts = [b'{"messages"', b": ", b"", b"[1, 2]}"]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": True} for part in parts
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    assert reader(messages) == {"messages": [1, 2]}
    with pytest.raises(ClientDisconnect):
        reader([messages[0], {"type": "http.disconnect"}])
    with pytest.raises(PayloadTooLargeError):
        reader([{"type": "http.request", "body": b" " * 600, "more_body": True}] * 2)
