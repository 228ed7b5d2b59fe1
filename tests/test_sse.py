"""SSE framing of chunks, errors and the end marker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.server.sse import DONE, encode_chunk, encode_error

CHUNK: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "delta": {"content": "Grüße 😀\nzwei"},
            "logprobs": None,
            "finish_reason": None,
        }
    ],
}


def test_chunk_is_one_compact_utf8_data_line() -> None:
    frame = encode_chunk(CHUNK)
    assert frame.startswith(b"data: {")
    assert frame.endswith(b"}\n\n")
    body = frame[len(b"data: ") : -2]
    assert b"\n" not in body and b"\r" not in body
    assert b", " not in body and b": " not in body
    assert "Grüße 😀".encode() in body
    assert json.loads(body) == CHUNK


def test_error_uses_the_same_framing() -> None:
    payload = {"error": {"message": "é", "type": "server_error", "param": None, "code": "x"}}
    assert encode_error(payload) == (
        b'data: {"error":{"message":"\xc3\xa9","type":"server_error","param":null,"code":"x"}}\n\n'
    )


def test_done_marker() -> None:
    assert DONE == b"data: [DONE]\n\n"


@pytest.mark.parametrize("encode", [encode_chunk, encode_error])
def test_a_lone_surrogate_is_escaped_instead_of_failing(encode: Any) -> None:
    frame = encode({"delta": {"content": "half \ud83d of a pair, é"}})
    assert frame == b'data: {"delta":{"content":"half \\ud83d of a pair, \\u00e9"}}\n\n'
