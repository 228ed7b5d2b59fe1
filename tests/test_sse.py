"""SSE framing of chunks, errors and the end marker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.server.sse import DONE, ChunkTemplate, encode_chunk, encode_error

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


def _content_chunk(model: str) -> Any:
    def make(text: str) -> dict[str, Any]:
        choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        return {"id": "chatcmpl-1", "model": model, "choices": [choice], "usage": None}

    return make


TEXTS = ["", "plain", "Grüße 😀\nzwei", 'quotes " and \\ back', "\x00", "\u2028", "half \ud83d"]
MODELS = ["m", "modèle", "\x00", '"content":"\x00"', "bad \udc80 name"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("text", TEXTS)
def test_a_chunk_template_writes_the_bytes_encode_chunk_writes(model: str, text: str) -> None:
    """Whatever the text and the chunk around it (the probe's own character, lone
    surrogates, which fall back to escaped JSON): byte for byte `encode_chunk`."""
    make = _content_chunk(model)
    assert ChunkTemplate(make).encode(text) == encode_chunk(make(text))


def test_a_chunk_template_makes_its_chunk_once() -> None:
    made: list[str] = []
    make = _content_chunk("m")

    def counted(text: str) -> Any:
        made.append(text)
        return make(text)

    template = ChunkTemplate(counted)
    frames = [template.encode(text) for text in ("a", "é", "c")]
    assert frames == [encode_chunk(make(text)) for text in ("a", "é", "c")]
    assert made == ["\x00"]  # the probe: no chunk dict per token
