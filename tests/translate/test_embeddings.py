"""OpenAI embeddings <-> Bedrock InvokeModel bodies: goldens, error table, base64 encoding."""

from __future__ import annotations

import array
import base64
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.errors import InvalidRequestError, UnsupportedParameterError, UpstreamError
from gateway.translate.openai_embeddings.invoke import (
    MAX_INPUTS,
    EmbeddingFamily,
    InvokeCall,
    embedding_family,
    embedding_inputs,
    embedding_vectors,
    openai_embedding_response,
    plan_embedding_calls,
)
from tests.servers import serve

GOLDEN = Path(__file__).parent.parent / "golden" / "embeddings"
CASES = sorted(path.stem for path in GOLDEN.glob("*.json"))
TOKEN_HEADER = "x-amzn-bedrock-input-token-count"


# Golden files ----------------------------------------------------------------------------


def _run_case(case: dict[str, Any]) -> tuple[list[InvokeCall], dict[str, Any]]:
    """The path a handler takes: input -> calls -> (golden Bedrock answers) -> OpenAI body."""
    request = case["request"]
    texts = embedding_inputs(request["input"])
    calls = plan_embedding_calls(
        model_id=case["model_id"],
        inputs=texts,
        dimensions=request["dimensions"],
        input_type=case["input_type"],
    )
    recorded = case["bedrock_calls"]
    assert len(calls) == len(recorded), "the golden needs one sample answer per planned call"

    vectors: list[list[float] | None] = [None] * len(texts)
    prompt_tokens = 0
    for call, sample in zip(calls, recorded, strict=True):
        got, tokens = embedding_vectors(
            call.family,
            sample["response_body"],
            expected=len(call.indexes),
            header_tokens=sample["response_headers"].get(TOKEN_HEADER),
        )
        assert tokens is not None
        prompt_tokens += tokens
        for index, vector in zip(call.indexes, got, strict=True):
            vectors[index] = vector

    assert all(vector is not None for vector in vectors)
    response = openai_embedding_response(
        [vector for vector in vectors if vector is not None],
        model=request["model"],
        prompt_tokens=prompt_tokens,
        encoding_format=request["encoding_format"],
    )
    return calls, response


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, update_golden: bool) -> None:
    path = GOLDEN / f"{name}.json"
    case = json.loads(path.read_text(encoding="utf-8"))
    calls, response = _run_case(case)
    planned = [{"indexes": list(call.indexes), "body": json.loads(call.body)} for call in calls]

    if update_golden:
        for sample, plan in zip(case["bedrock_calls"], planned, strict=True):
            sample.update(plan)
        case["response"] = response
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return

    expected = [{"indexes": c["indexes"], "body": c["body"]} for c in case["bedrock_calls"]]
    assert planned == expected
    assert response == case["response"]


def test_goldens_cover_every_family_in_both_formats() -> None:
    seen = set()
    for name in CASES:
        case = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
        seen.add((embedding_family(case["model_id"]), case["request"]["encoding_format"]))
    wanted = {(family, fmt) for family in EmbeddingFamily for fmt in ("float", "base64")}
    assert wanted <= seen


def test_bodies_are_compact_utf8_json() -> None:
    # Bedrock bills nothing for whitespace, but the body size limit counts it; and escaping
    # every non-ASCII character would triple the size of, say, Japanese text.
    (call,) = plan_embedding_calls(
        model_id="amazon.titan-embed-text-v2:0", inputs=["café 東京"], dimensions=256
    )
    assert call.body == '{"inputText":"café 東京","dimensions":256,"normalize":true}'.encode()


# Model families -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("amazon.titan-embed-text-v1", EmbeddingFamily.TITAN_TEXT_V1),
        ("amazon.titan-embed-text-v1:2:8k", EmbeddingFamily.TITAN_TEXT_V1),
        ("amazon.titan-embed-text-v2:0", EmbeddingFamily.TITAN_TEXT_V2),
        ("us.amazon.titan-embed-text-v2:0", EmbeddingFamily.TITAN_TEXT_V2),
        ("cohere.embed-english-v3", EmbeddingFamily.COHERE_V3),
        ("cohere.embed-multilingual-v3", EmbeddingFamily.COHERE_V3),
        ("eu.cohere.embed-multilingual-v3", EmbeddingFamily.COHERE_V3),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
            EmbeddingFamily.TITAN_TEXT_V2,
        ),
        (
            "arn:aws:bedrock:eu-west-1::foundation-model/cohere.embed-english-v3",
            EmbeddingFamily.COHERE_V3,
        ),
        # Neighbours with other body formats, and ids that do not name a base model.
        ("amazon.titan-embed-image-v1", None),
        ("amazon.titan-embed-text-v3", None),
        ("cohere.embed-v4:0", None),
        ("cohere.embed-english-v30", None),
        ("xcohere.embed-english-v3", None),
        ("anthropic.claude-3-haiku-20240307-v1:0", None),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123", None),
        ("", None),
    ],
)
def test_embedding_family(model_id: str, family: EmbeddingFamily | None) -> None:
    assert embedding_family(model_id) is family


# Batching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "count", "sizes"),
    [
        ("amazon.titan-embed-text-v1", 3, [1, 1, 1]),
        ("amazon.titan-embed-text-v2:0", 2, [1, 1]),
        ("cohere.embed-english-v3", 96, [96]),
        ("cohere.embed-english-v3", 97, [96, 1]),
        # OpenAI's maximum request: 21 full Cohere calls and the 32 texts left over.
        ("cohere.embed-multilingual-v3", MAX_INPUTS, [96] * 21 + [32]),
    ],
)
def test_calls_respect_per_call_limits(model_id: str, count: int, sizes: list[int]) -> None:
    texts = [f"text {n}" for n in range(count)]
    calls = plan_embedding_calls(model_id=model_id, inputs=texts, dimensions=None)

    assert [len(call.indexes) for call in calls] == sizes
    # Every input is covered exactly once, in order, and each body carries exactly its texts.
    assert [index for call in calls for index in call.indexes] == list(range(count))
    for call in calls:
        body = json.loads(call.body)
        sent = body["texts"] if "texts" in body else [body["inputText"]]
        assert sent == [texts[index] for index in call.indexes]


def test_longest_accepted_texts_pass() -> None:
    plan_embedding_calls(model_id="cohere.embed-english-v3", inputs=["x" * 2048], dimensions=None)
    plan_embedding_calls(
        model_id="amazon.titan-embed-text-v2:0", inputs=["x" * 50_000], dimensions=None
    )
    # Titan v1 documents only a token limit, so length is left for Bedrock to judge.
    plan_embedding_calls(
        model_id="amazon.titan-embed-text-v1", inputs=["x" * 100_000], dimensions=None
    )


# Errors ---------------------------------------------------------------------------------

TITAN_V1 = "amazon.titan-embed-text-v1"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"


def _plan(
    model_id: str = TITAN_V2,
    inputs: list[str] | None = None,
    dimensions: int | None = None,
    input_type: str | None = None,
) -> object:
    return plan_embedding_calls(
        model_id=model_id,
        inputs=["hello"] if inputs is None else inputs,
        dimensions=dimensions,
        input_type=input_type,
    )


def _respond(encoding_format: str) -> object:
    return openai_embedding_response(
        [[0.5]], model="m", prompt_tokens=1, encoding_format=encoding_format
    )


@pytest.mark.parametrize(
    ("call", "error", "param"),
    [
        # `input`, as OpenAI would refuse it, or as Bedrock cannot take it.
        (lambda: embedding_inputs(""), InvalidRequestError, "input"),
        (lambda: embedding_inputs([]), InvalidRequestError, "input"),
        (lambda: embedding_inputs(["a", ""]), InvalidRequestError, "input"),
        (lambda: embedding_inputs([15339, 1917]), InvalidRequestError, "input"),
        (lambda: embedding_inputs([[15339], [1917, 0]]), InvalidRequestError, "input"),
        (lambda: embedding_inputs(["a", 1]), InvalidRequestError, "input"),
        (lambda: embedding_inputs([True]), InvalidRequestError, "input"),
        (lambda: embedding_inputs(None), InvalidRequestError, "input"),
        (lambda: embedding_inputs(42), InvalidRequestError, "input"),
        (lambda: embedding_inputs({"text": "a"}), InvalidRequestError, "input"),
        (lambda: embedding_inputs(["a"] * (MAX_INPUTS + 1)), InvalidRequestError, "input"),
        (lambda: _plan(inputs=[]), InvalidRequestError, "input"),
        (lambda: _plan(COHERE, inputs=["ok", "x" * 2049]), InvalidRequestError, "input"),
        (lambda: _plan(TITAN_V2, inputs=["x" * 50_001]), InvalidRequestError, "input"),
        # `model`: not an embedding model, or one whose body format we do not know.
        (lambda: _plan("anthropic.claude-3-haiku-20240307-v1:0"), InvalidRequestError, "model"),
        (lambda: _plan("amazon.titan-embed-image-v1"), InvalidRequestError, "model"),
        (lambda: _plan("cohere.embed-v4:0"), InvalidRequestError, "model"),
        # `dimensions`: only the sizes each model can produce.
        (lambda: _plan(TITAN_V1, dimensions=1024), InvalidRequestError, "dimensions"),
        (lambda: _plan(TITAN_V2, dimensions=1536), InvalidRequestError, "dimensions"),
        (lambda: _plan(TITAN_V2, dimensions=300), InvalidRequestError, "dimensions"),
        (lambda: _plan(TITAN_V2, dimensions=0), InvalidRequestError, "dimensions"),
        (lambda: _plan(TITAN_V2, dimensions=-512), InvalidRequestError, "dimensions"),
        (lambda: _plan(COHERE, dimensions=512), InvalidRequestError, "dimensions"),
        # `input_type`: Cohere's four, and nothing for Titan.
        (lambda: _plan(COHERE, input_type="image"), InvalidRequestError, "input_type"),
        (lambda: _plan(COHERE, input_type="query"), InvalidRequestError, "input_type"),
        (
            lambda: _plan(TITAN_V1, input_type="search_query"),
            UnsupportedParameterError,
            "input_type",
        ),
        (
            lambda: _plan(TITAN_V2, input_type="search_query"),
            UnsupportedParameterError,
            "input_type",
        ),
        # `encoding_format`
        (lambda: _respond("hex"), InvalidRequestError, "encoding_format"),
        (lambda: _respond("FLOAT"), InvalidRequestError, "encoding_format"),
    ],
)
def test_invalid_requests(call: Any, error: type[Exception], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        call()
    assert type(info.value) is error
    assert info.value.status == 400
    assert info.value.param == param


@pytest.mark.parametrize("value", [[15339, 1917], [[15339], [1917, 0]], [[]]])
def test_token_ids_are_named_as_such(value: object) -> None:
    # A client sending tiktoken ids needs to know why, not just that, its input failed.
    with pytest.raises(InvalidRequestError, match="token ids") as info:
        embedding_inputs(value)
    assert info.value.param == "input"


@pytest.mark.parametrize("value", [["a", 1], [1, "a"], [[1], 2], [None]])
def test_mixed_arrays_are_not_token_ids(value: object) -> None:
    with pytest.raises(InvalidRequestError, match="string or an array of strings"):
        embedding_inputs(value)


def test_empty_string_message_names_its_position() -> None:
    with pytest.raises(InvalidRequestError, match=r"input\[2\] must not be an empty string"):
        embedding_inputs(["a", "b", "", "d"])


def test_unknown_model_message() -> None:
    with pytest.raises(InvalidRequestError, match="not an embedding model the gateway knows"):
        _plan("meta.llama3-8b-instruct-v1:0")


@pytest.mark.parametrize(
    ("family", "body", "expected"),
    [
        (EmbeddingFamily.TITAN_TEXT_V1, {"inputTextTokenCount": 3}, 1),
        (EmbeddingFamily.TITAN_TEXT_V2, {"embedding": []}, 1),
        (EmbeddingFamily.TITAN_TEXT_V2, {"embedding": [0.1, "0.2"]}, 1),
        (EmbeddingFamily.TITAN_TEXT_V2, {"embedding": [0.1, True]}, 1),
        (EmbeddingFamily.TITAN_TEXT_V2, {"embedding": [0.1, math.nan]}, 1),
        (EmbeddingFamily.TITAN_TEXT_V2, {"embedding": [0.1, math.inf]}, 1),
        (EmbeddingFamily.TITAN_TEXT_V1, {"embedding": 0.1}, 1),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1], [0.2]]}, 3),
        (EmbeddingFamily.COHERE_V3, {"embeddings": {"int8": [[1]]}}, 1),
        (EmbeddingFamily.COHERE_V3, {"response_type": "embeddings_floats"}, 1),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1], None]}, 2),
        (EmbeddingFamily.COHERE_V3, ["not", "an", "object"], 1),
    ],
)
def test_unreadable_bedrock_bodies_are_upstream_errors(
    family: EmbeddingFamily, body: Any, expected: int
) -> None:
    with pytest.raises(UpstreamError) as info:
        embedding_vectors(family, body, expected=expected)
    assert info.value.status == 502
    assert info.value.bedrock_error == "MalformedResponse"


# Token counts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "body", "header", "tokens"),
    [
        # Titan's body count wins: it is the model's own figure for this very call.
        (EmbeddingFamily.TITAN_TEXT_V2, {"embedding": [0.1], "inputTextTokenCount": 4}, "9", 4),
        (EmbeddingFamily.TITAN_TEXT_V1, {"embedding": [0.1], "inputTextTokenCount": 0}, None, 0),
        (EmbeddingFamily.TITAN_TEXT_V1, {"embedding": [0.1]}, "9", 9),
        (
            EmbeddingFamily.TITAN_TEXT_V1,
            {"embedding": [0.1], "inputTextTokenCount": -1},
            None,
            None,
        ),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, "17", 17),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, " 17 ", 17),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, None, None),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, "", None),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, "-3", None),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, "1e3", None),
        (EmbeddingFamily.COHERE_V3, {"embeddings": [[0.1]]}, "١٢", None),
    ],
)
def test_token_count(
    family: EmbeddingFamily, body: dict[str, Any], header: str | None, tokens: int | None
) -> None:
    _, got = embedding_vectors(family, body, expected=1, header_tokens=header)
    assert got == tokens


def test_integer_vector_values_become_floats() -> None:
    vectors, _ = embedding_vectors(EmbeddingFamily.COHERE_V3, {"embeddings": [[0, 1]]}, expected=1)
    assert vectors == [[0.0, 1.0]]
    assert all(type(value) is float for value in vectors[0])


# base64 -----------------------------------------------------------------------------------


def _decode(encoded: str) -> list[float]:
    """Decode as OpenAI's SDK does without numpy: raw float32 in native order."""
    values = array.array("f", base64.b64decode(encoded))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def _base64(vector: list[float]) -> str:
    response = openai_embedding_response(
        [vector], model="m", prompt_tokens=0, encoding_format="base64"
    )
    encoded = response["data"][0]["embedding"]
    assert isinstance(encoded, str)
    return encoded


@pytest.mark.parametrize(
    ("vector", "encoded"),
    [
        # Worked by hand from the IEEE 754 bit patterns: 1.0 = 0x3F800000, -2.0 = 0xC0000000,
        # each written least significant byte first.
        ([1.0], "AACAPw=="),
        ([1.0, -2.0], "AACAPwAAAMA="),
        ([0.0], "AAAAAA=="),
        ([], ""),
    ],
)
def test_base64_known_vectors(vector: list[float], encoded: str) -> None:
    assert _base64(vector) == encoded


def _float32_sweep() -> list[float]:
    """Finite float32 values spread over the whole bit space, plus the edges by name."""
    patterns = [(n * 2654435761) % 2**32 for n in range(4096)]  # Knuth's multiplicative step
    values = [struct.unpack("<f", struct.pack("<I", bits))[0] for bits in patterns]
    edges = [0.0, -0.0, 1.0, -1.0, 1 + 2**-23, 2**-126, 2**-149, -(2**-149), 3.4028234663852886e38]
    return [value for value in values if math.isfinite(value)] + edges


def test_base64_round_trip_is_exact_for_float32_values() -> None:
    vector = _float32_sweep()
    decoded = _decode(_base64(vector))
    assert decoded == vector
    # `==` cannot tell -0.0 from 0.0; the sign bit must survive too.
    assert [math.copysign(1, v) for v in decoded] == [math.copysign(1, v) for v in vector]


@pytest.mark.parametrize(
    "value",
    [0.1, -0.7, 1 / 3, math.pi, 1 + 2**-24, 1 + 2**-24 + 2**-40, 1e-40, -1e-45, 0.0123456789],
)
def test_base64_round_trip_keeps_float32_precision(value: float) -> None:
    # Bedrock's JSON numbers are float64 in Python; base64 carries float32, which has a
    # 24-bit significand: rounding moves a value by at most 2**-24 of itself, or by half
    # the smallest subnormal (2**-150) near zero.
    (decoded,) = _decode(_base64([value]))
    assert math.isclose(decoded, value, rel_tol=2**-24, abs_tol=2**-150)


def test_base64_is_little_endian_whatever_the_host() -> None:
    assert base64.b64decode(_base64([1.0])) == struct.pack("<f", 1.0) == b"\x00\x00\x80\x3f"


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])
def test_openai_sdk_reads_our_response(encoding_format: str | None) -> None:
    """The real SDK over real HTTP; without `encoding_format` it asks for base64 and decodes."""
    vectors = [[0.5, -0.25, 0.125], [1.0, 2.0, -3.0]]
    asked: list[str | None] = []

    async def create_embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        asked.append(body.get("encoding_format"))
        texts = embedding_inputs(body["input"])
        response = openai_embedding_response(
            vectors[: len(texts)],
            model=body["model"],
            prompt_tokens=7,
            encoding_format=body.get("encoding_format"),
        )
        return JSONResponse(response)

    app = Starlette(routes=[Route("/v1/embeddings", create_embeddings, methods=["POST"])])
    with serve(app) as server:
        client = openai.OpenAI(api_key="test", base_url=f"{server.url}/v1", max_retries=0)
        if encoding_format is None:
            result = client.embeddings.create(model="titan", input=["a", "b"])
        else:
            result = client.embeddings.create(
                model="titan",
                input=["a", "b"],
                encoding_format=encoding_format,  # type: ignore[arg-type]
            )
        client.close()

    assert asked == [encoding_format or "base64"]
    assert result.model == "titan"
    assert result.usage.prompt_tokens == result.usage.total_tokens == 7
    assert [item.index for item in result.data] == [0, 1]
    if encoding_format == "base64":
        # Asked for explicitly, the SDK hands the string over untouched.
        assert [_decode(item.embedding) for item in result.data] == vectors  # type: ignore[arg-type]
    else:
        assert [item.embedding for item in result.data] == vectors


def test_a_lone_surrogate_still_makes_a_valid_body() -> None:
    (call,) = plan_embedding_calls(
        model_id="amazon.titan-embed-text-v2:0", inputs=["a\ud800b"], dimensions=256
    )
    assert json.loads(call.body)["inputText"] == "a\ud800b"
