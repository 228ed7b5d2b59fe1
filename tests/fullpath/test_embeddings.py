"""`client.embeddings.create` for each Bedrock embedding family, float and base64."""

from __future__ import annotations

import base64
import math
import struct

import openai
import pytest

from tests.fullpath.conftest import RunningGateway, ledger, script

TEXTS = ["The quick brown fox", "jumps over the lazy dog", "and runs away."]


def tokens(text: str) -> int:  # the emulator's count: ceil(characters / 4), at least 1
    return max(1, math.ceil(len(text) / 4))


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("titan-embed-text-v1", 1536),
        ("titan-embed-text-v2", 1024),
        ("cohere-en", 1024),
        ("cohere-multi", 1024),
    ],
)
@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_each_family_and_format(
    gateway: RunningGateway, model: str, size: int, encoding_format: str | None
) -> None:
    kwargs = {"encoding_format": encoding_format} if encoding_format else {}
    raw = gateway.client().embeddings.with_raw_response.create(model=model, input=TEXTS, **kwargs)
    result = raw.parse()
    assert raw.headers["x-gateway-model"]
    assert result.model == model and result.object == "list"
    assert [item.index for item in result.data] == [0, 1, 2]
    for item in result.data:
        vector = item.embedding
        if encoding_format == "base64":
            assert isinstance(vector, str)
            data = base64.b64decode(vector)
            vector = list(struct.unpack(f"<{len(data) // 4}f", data))
        assert len(vector) == size
    assert result.usage.prompt_tokens == sum(tokens(t) for t in TEXTS)
    assert result.usage.total_tokens == result.usage.prompt_tokens


def test_same_vectors_in_float_and_base64(gateway: RunningGateway) -> None:
    client = gateway.client()
    floats = client.embeddings.create(model="cohere-en", input="hello", encoding_format="float")
    encoded = client.embeddings.create(model="cohere-en", input="hello", encoding_format="base64")
    data = base64.b64decode(encoded.data[0].embedding)  # type: ignore[arg-type]
    decoded = struct.unpack(f"<{len(data) // 4}f", data)
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_titan_v2_dimensions(gateway: RunningGateway) -> None:
    result = gateway.client().embeddings.create(
        model="text-embedding-3-small", input="hi", dimensions=256, encoding_format="float"
    )
    assert len(result.data[0].embedding) == 256
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().embeddings.create(model="titan-embed-text-v2", input="hi", dimensions=300)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "dimensions"


def test_many_inputs_are_batched_and_ordered(gateway: RunningGateway) -> None:
    texts = [f"text number {i}" for i in range(130)]
    client = gateway.client()
    batched = client.embeddings.create(model="cohere-en", input=texts, encoding_format="float")
    one = client.embeddings.create(model="cohere-en", input=texts[100], encoding_format="float")
    assert len(batched.data) == 130
    assert batched.data[100].embedding == one.data[0].embedding
    assert batched.usage.prompt_tokens == sum(tokens(t) for t in texts)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model": "titan-embed-text-v2", "input": ""}, "input"),
        ({"model": "titan-embed-text-v2", "input": []}, "input"),
        ({"model": "titan-embed-text-v2", "input": [[1, 2, -3]]}, "input"),  # not a token id
        ({"model": "titan-embed-text-v2", "input": [[9906], []]}, "input"),
        ({"model": "nova-micro", "input": "hi"}, "model"),
        ({"model": "unknown-embedder", "input": "hi"}, "model"),
        (
            {"model": "titan-embed-text-v2", "input": "hi", "extra_body": {"truncate": "END"}},
            "truncate",
        ),
    ],
)
def test_bad_embedding_requests(gateway: RunningGateway, kwargs: dict, param: str) -> None:  # type: ignore[type-arg]
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as info:
        gateway.client().embeddings.create(**kwargs)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == param


def test_embedding_errors_and_usage_records(gateway: RunningGateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="cohere-en", input=script("x", error="ThrottlingException"))
    client.embeddings.create(model="cohere-en", input=TEXTS, user="u-1")
    failed, ok = ledger(gateway)
    assert (failed["status"], failed["error_type"], failed["input_tokens"]) == (
        429,
        "ThrottlingException",
        0,
    )
    assert (ok["status"], ok["route"], ok["end_user"]) == (200, "/v1/embeddings", "u-1")
    assert ok["input_tokens"] == sum(tokens(t) for t in TEXTS) and ok["output_tokens"] == 0
