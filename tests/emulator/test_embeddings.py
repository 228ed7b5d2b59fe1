"""Embedding bodies per model family: shapes, determinism, normalisation, validation."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway.emulator.embeddings import (
    embedding_family,
    read_embedding_request,
    render_embeddings,
)
from gateway.emulator.errors import ServiceError

TITAN_V1 = "amazon.titan-embed-text-v1"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"


def embed(model_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    payload, tokens = render_embeddings(read_embedding_request(model_id, json.dumps(body).encode()))
    result: dict[str, Any] = json.loads(payload)
    return result, tokens


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        (TITAN_V1, "titan-v1"),
        (TITAN_V2, "titan-v2"),
        ("us.amazon.titan-embed-text-v2:0", "titan-v2"),
        ("arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-multilingual-v3", "cohere-v3"),
        (COHERE, "cohere-v3"),
        ("anthropic.claude-3-haiku", None),
        ("cohere.embed-v4:0", None),
    ],
)
def test_families_come_from_the_model_id(model_id: str, family: str | None) -> None:
    assert embedding_family(model_id) == family


def test_titan_v1() -> None:
    body, tokens = embed(TITAN_V1, {"inputText": "hello world"})
    assert set(body) == {"embedding", "inputTextTokenCount"}
    assert len(body["embedding"]) == 1536
    assert body["inputTextTokenCount"] == tokens == 3  # ceil(11 / 4)
    assert embed(TITAN_V1, {"inputText": "hello world"})[0] == body
    assert embed(TITAN_V1, {"inputText": "hello there"})[0]["embedding"] != body["embedding"]


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
def test_titan_v2_sizes_and_unit_length(dimensions: int) -> None:
    body, _ = embed(TITAN_V2, {"inputText": "hi", "dimensions": dimensions})
    assert len(body["embedding"]) == dimensions
    assert norm(body["embedding"]) == pytest.approx(1.0)
    assert body["embeddingsByType"] == {"float": body["embedding"]}


def test_titan_v2_without_normalising_and_with_binary() -> None:
    raw, _ = embed(TITAN_V2, {"inputText": "hi", "normalize": False})
    assert norm(raw["embedding"]) > 2
    both, _ = embed(TITAN_V2, {"inputText": "hi", "embeddingTypes": ["binary", "float"]})
    assert set(both["embeddingsByType"]) == {"binary", "float"}
    binary = both["embeddingsByType"]["binary"]
    assert binary == [int(v > 0) for v in both["embedding"]]
    assert 0 < sum(binary) < 1024


def test_cohere_floats() -> None:
    body, tokens = embed(COHERE, {"texts": ["a", "bb bb"], "input_type": "search_document"})
    assert body["response_type"] == "embeddings_floats"
    assert body["texts"] == ["a", "bb bb"]
    assert [len(v) for v in body["embeddings"]] == [1024, 1024]
    assert tokens == 1 + 2
    assert len(body["id"]) == 36
    assert embed(COHERE, {"texts": ["a", "bb bb"], "input_type": "search_document"})[0] == body


def test_cohere_by_type() -> None:
    request = {"texts": ["x"], "input_type": "search_query"}
    floats = embed(COHERE, request)[0]["embeddings"][0]
    types = ["float", "int8", "uint8", "binary", "ubinary"]
    body, _ = embed(COHERE, {**request, "embedding_types": types})
    assert body["response_type"] == "embeddings_by_type"
    by_type = body["embeddings"]
    assert list(by_type) == types
    assert by_type["float"] == [floats]
    assert all(-128 <= v <= 127 for v in by_type["int8"][0]) and len(by_type["int8"][0]) == 1024
    assert all(0 <= v <= 255 for v in by_type["uint8"][0])
    assert len(by_type["binary"][0]) == len(by_type["ubinary"][0]) == 128
    assert [v + 128 for v in by_type["binary"][0]] == by_type["ubinary"][0]
    first_byte = sum(int(v > 0) << (7 - i) for i, v in enumerate(floats[:8]))
    assert by_type["ubinary"][0][0] == first_byte


def test_cohere_truncation() -> None:
    long = "x" * 2000 + "y" * 100
    body, _ = embed(COHERE, {"texts": [long], "input_type": "clustering", "truncate": "START"})
    assert body["texts"] == [long[-2048:]]
    body, _ = embed(COHERE, {"texts": [long], "input_type": "clustering", "truncate": "END"})
    assert body["texts"] == [long[:2048]]


@pytest.mark.parametrize(
    ("model_id", "body", "fragment"),
    [
        (TITAN_V1, {}, "required key [inputText] not found"),
        (TITAN_V1, {"inputText": ""}, "#/inputText"),
        (TITAN_V1, {"inputText": "x", "dimensions": 256}, "extraneous key [dimensions]"),
        (TITAN_V2, {"inputText": "x" * 50_001}, "#/inputText"),
        (TITAN_V2, {"inputText": "x", "dimensions": 300}, "#/dimensions"),
        (TITAN_V2, {"inputText": "x", "normalize": "yes"}, "#/normalize"),
        (TITAN_V2, {"inputText": "x", "embeddingTypes": ["int8"]}, "#/embeddingTypes"),
        (COHERE, {"texts": [], "input_type": "search_query"}, "#/texts"),
        (COHERE, {"texts": ["x"] * 97, "input_type": "search_query"}, "#/texts"),
        (COHERE, {"texts": "x", "input_type": "search_query"}, "[texts]"),
        (COHERE, {"texts": ["x"]}, "#/input_type"),
        (COHERE, {"texts": ["x" * 2049], "input_type": "search_query"}, "maxLength"),
        (
            COHERE,
            {"texts": ["x"], "input_type": "search_query", "truncate": "MIDDLE"},
            "#/truncate",
        ),
        (
            COHERE,
            {"texts": ["x"], "input_type": "search_query", "embedding_types": []},
            "embedding_types",
        ),
        (COHERE, {"images": ["data:image/png;base64,AA=="], "input_type": "image"}, "#/images"),
    ],
)
def test_bad_bodies(model_id: str, body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ServiceError) as caught:
        embed(model_id, body)
    assert caught.value.name == "ValidationException"
    assert caught.value.message.startswith("Malformed input request: ")
    assert fragment in caught.value.message


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b""])
def test_bodies_that_are_not_objects(raw: bytes) -> None:
    with pytest.raises(ServiceError, match="Malformed input request"):
        read_embedding_request(TITAN_V2, raw)


def test_other_models_are_refused() -> None:
    with pytest.raises(ServiceError, match="supports only embedding models") as caught:
        read_embedding_request("anthropic.claude-3-haiku-20240307-v1:0", b"{}")
    assert caught.value.status == 400
