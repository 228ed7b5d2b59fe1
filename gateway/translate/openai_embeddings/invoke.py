"""OpenAI embeddings requests and responses <-> Bedrock InvokeModel bodies.

Bedrock has no shared embeddings operation. Each model family takes its own JSON body
through InvokeModel and answers in its own shape, and the families disagree on how many
texts one call may carry, how long a text may be, which vector sizes exist and where the
token count is reported. Everything that differs lives in the tables below, so a handler
only has to run the same five steps for every model:

1. `embedding_inputs(request.input)` turns OpenAI's `input` into a list of texts.
2. `plan_embedding_calls(...)` splits them into InvokeModel bodies within the model's limits.
3. Each `InvokeCall.body` goes to Bedrock (concurrently, if the handler likes).
4. `embedding_vectors(...)` reads each answer; `InvokeCall.indexes` says where its vectors go.
5. `openai_embedding_response(...)` builds the OpenAI body, as floats or base64.

Sources for the wire formats and limits:

* Titan Text Embeddings v1 and v2 bodies:
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
* Titan sizes (v1: 1536 dimensions; v2: 8,192 tokens or 50,000 characters, 1024/512/256):
  https://docs.aws.amazon.com/bedrock/latest/userguide/titan-embedding-models.html
* Cohere Embed v3 (at most 96 texts per call, 2048 characters per text):
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed-v3.html
* OpenAI (string or array of strings or token arrays, no empty string, at most 2048 items):
  https://platform.openai.com/docs/api-reference/embeddings/create
"""

from __future__ import annotations

import base64
import enum
import json
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequestError, UnsupportedParameterError, UpstreamError
from gateway.translate.openai_embeddings.inputs import MAX_INPUTS, embedding_inputs

__all__ = [
    "MAX_INPUTS",
    "EmbeddingFamily",
    "InvokeCall",
    "embedding_family",
    "embedding_inputs",
    "embedding_vectors",
    "openai_embedding_response",
    "plan_embedding_calls",
]

# OpenAI rejects arrays longer than this; we keep the same contract so a client that works
# against OpenAI works here, and so one request can never fan out into unbounded calls.


class EmbeddingFamily(enum.StrEnum):
    """Models that share one InvokeModel body format."""

    TITAN_TEXT_V1 = "titan-text-v1"
    TITAN_TEXT_V2 = "titan-text-v2"
    COHERE_V3 = "cohere-v3"


@dataclass(frozen=True, slots=True)
class InvokeCall:
    """One InvokeModel call: its JSON body and the positions of the inputs it embeds.

    `indexes` is what lets the handler send calls concurrently and still answer in input
    order: vector `k` of this call's answer belongs to input `indexes[k]`.
    """

    family: EmbeddingFamily
    body: bytes
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Limits:
    texts_per_call: int
    max_chars: int | None  # None: the model documents only a token limit
    dimensions: tuple[int, ...]  # the vector sizes the model can return
    default_dimensions: int
    input_types: tuple[str, ...]  # empty: the model has no notion of an input type


_LIMITS: dict[EmbeddingFamily, _Limits] = {
    EmbeddingFamily.TITAN_TEXT_V1: _Limits(
        texts_per_call=1,
        max_chars=None,
        dimensions=(1536,),
        default_dimensions=1536,
        input_types=(),
    ),
    EmbeddingFamily.TITAN_TEXT_V2: _Limits(
        texts_per_call=1,
        max_chars=50_000,
        dimensions=(256, 512, 1024),
        default_dimensions=1024,
        input_types=(),
    ),
    EmbeddingFamily.COHERE_V3: _Limits(
        texts_per_call=96,
        max_chars=2048,
        dimensions=(1024,),
        default_dimensions=1024,
        # The first entry is the default: an OpenAI client embedding text most likely
        # stores it for retrieval, and Cohere requires *some* input type on every call.
        input_types=("search_document", "search_query", "classification", "clustering"),
    ),
}

# Base model ids, as they appear after a cross-region prefix (`us.`), inside a foundation
# model ARN (`.../foundation-model/<id>`), or before a version suffix (`:0`, `:2:8k`).
_BASE_IDS: dict[str, EmbeddingFamily] = {
    "amazon.titan-embed-text-v1": EmbeddingFamily.TITAN_TEXT_V1,
    "amazon.titan-embed-text-v2": EmbeddingFamily.TITAN_TEXT_V2,
    "cohere.embed-english-v3": EmbeddingFamily.COHERE_V3,
    "cohere.embed-multilingual-v3": EmbeddingFamily.COHERE_V3,
}

# Anchored on both sides so that neighbours such as `amazon.titan-embed-image-v1` or a
# future `cohere.embed-english-v30` are not mistaken for a model we know.
_BASE_ID_PATTERN = re.compile(
    r"(?:^|[./])(" + "|".join(re.escape(base) for base in sorted(_BASE_IDS)) + r")(?=$|:)"
)


def embedding_family(model_id: str) -> EmbeddingFamily | None:
    """The body format `model_id` speaks, or None if it is not an embedding model we know.

    Ids that hide the base model, such as provisioned-throughput or application inference
    profile ARNs, give None: nothing in them says which format to send.
    """
    match = _BASE_ID_PATTERN.search(model_id)
    return _BASE_IDS[match.group(1)] if match else None


def plan_embedding_calls(
    *,
    model_id: str,
    inputs: Sequence[str],
    dimensions: int | None,
    input_type: str | None = None,
) -> list[InvokeCall]:
    """The InvokeModel calls that embed `inputs` with `model_id`, in input order.

    Everything a model would refuse is refused here with the OpenAI parameter named, before
    any call is paid for. `dimensions` is checked against the sizes the model can produce;
    `input_type` (Cohere only) defaults to `search_document`.
    """
    family = embedding_family(model_id)
    if family is None:
        raise InvalidRequestError(
            f"{model_id!r} is not an embedding model the gateway knows how to call",
            param="model",
        )
    limits = _LIMITS[family]
    if not inputs:
        raise InvalidRequestError("input must not be empty", param="input")

    if dimensions is None:
        dimensions = limits.default_dimensions
    elif dimensions not in limits.dimensions:
        sizes = ", ".join(str(size) for size in limits.dimensions)
        raise InvalidRequestError(
            f"{model_id} returns vectors of {sizes} dimensions, not {dimensions}",
            param="dimensions",
        )

    if not limits.input_types:
        if input_type is not None:
            raise UnsupportedParameterError(
                f"{model_id} has no input type; leave input_type unset", param="input_type"
            )
    elif input_type is None:
        input_type = limits.input_types[0]
    elif input_type not in limits.input_types:
        raise InvalidRequestError(
            f"input_type must be one of {', '.join(limits.input_types)}", param="input_type"
        )

    if limits.max_chars is not None:
        for index, text in enumerate(inputs):
            if len(text) > limits.max_chars:
                raise InvalidRequestError(
                    f"input[{index}] has {len(text)} characters; {model_id} accepts at most "
                    f"{limits.max_chars} per input",
                    param="input",
                )

    build = _BODY_BUILDERS[family]
    step = limits.texts_per_call
    return [
        InvokeCall(
            family=family,
            body=_compact_json(build(inputs[start : start + step], dimensions, input_type)),
            indexes=tuple(range(start, min(start + step, len(inputs)))),
        )
        for start in range(0, len(inputs), step)
    ]


def embedding_vectors(
    family: EmbeddingFamily,
    body: Mapping[str, Any],
    *,
    expected: int,
    header_tokens: str | None = None,
) -> tuple[list[list[float]], int | None]:
    """The vectors of one InvokeModel answer, in call order, and its input token count.

    The count comes from the body when the model reports it there (Titan's
    `inputTextTokenCount`), else from `header_tokens`, the value of Bedrock's
    `X-Amzn-Bedrock-Input-Token-Count` response header, which is the only place Cohere's
    count appears. None means neither was readable and the caller must estimate.

    A body we cannot read is Bedrock's fault, not the client's, so it raises a 502.
    """
    if not isinstance(body, Mapping):
        raise _malformed(family, "the body is not a JSON object")
    raw_vectors = _VECTOR_READERS[family](family, body)
    if len(raw_vectors) != expected:
        raise _malformed(family, f"{len(raw_vectors)} embeddings for {expected} inputs")
    vectors = [_float_vector(family, raw) for raw in raw_vectors]

    tokens = _count(body.get("inputTextTokenCount"))
    if tokens is None and header_tokens is not None:
        tokens = _count(header_tokens.strip())
    return vectors, tokens


def openai_embedding_response(
    vectors: Sequence[Sequence[float]],
    *,
    model: str,
    prompt_tokens: int,
    encoding_format: str | None = None,
) -> dict[str, Any]:
    """The body of OpenAI's `POST /v1/embeddings` answer for `vectors`, in input order.

    `base64` is the float32 little-endian bytes of each vector: what the OpenAI SDKs ask
    for by default and decode with `numpy.frombuffer(..., dtype="float32")`. It is also a
    third of the size of the JSON numbers. `None` means OpenAI's default, `float`.
    """
    encode = _ENCODERS.get(encoding_format or "float")
    if encode is None:
        raise InvalidRequestError(
            f"encoding_format must be one of {', '.join(_ENCODERS)}", param="encoding_format"
        )
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector)}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        # Embeddings produce no output tokens, so OpenAI reports the prompt count twice.
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


# Request bodies ---------------------------------------------------------------------------

_BodyBuilder = Callable[[Sequence[str], int, str | None], dict[str, Any]]


def _titan_v1_body(texts: Sequence[str], dimensions: int, input_type: str | None) -> dict[str, Any]:
    # v1 takes nothing but the text; its vectors are always 1536 long.
    return {"inputText": texts[0]}


def _titan_v2_body(texts: Sequence[str], dimensions: int, input_type: str | None) -> dict[str, Any]:
    # `normalize` is Titan's default too, but spelled out because OpenAI clients rely on it:
    # OpenAI's vectors have length 1, so callers compare them with a plain dot product.
    return {"inputText": texts[0], "dimensions": dimensions, "normalize": True}


def _cohere_body(texts: Sequence[str], dimensions: int, input_type: str | None) -> dict[str, Any]:
    # `truncate` is left at Cohere's default, NONE: an over-long text is an error, as it is
    # with OpenAI, rather than silently embedding only part of it.
    return {"texts": list(texts), "input_type": input_type}


_BODY_BUILDERS: dict[EmbeddingFamily, _BodyBuilder] = {
    EmbeddingFamily.TITAN_TEXT_V1: _titan_v1_body,
    EmbeddingFamily.TITAN_TEXT_V2: _titan_v2_body,
    EmbeddingFamily.COHERE_V3: _cohere_body,
}


def _compact_json(value: dict[str, Any]) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; its JSON escape is still a valid body.
        return json.dumps(value, separators=(",", ":")).encode("ascii")


# Response bodies --------------------------------------------------------------------------


def _titan_vectors(family: EmbeddingFamily, body: Mapping[str, Any]) -> list[Any]:
    # One text per call, so one vector; v2 repeats it under `embeddingsByType`, which
    # holds nothing `embedding` does not while we ask only for floats.
    if "embedding" not in body:
        raise _malformed(family, "no `embedding` field")
    return [body["embedding"]]


def _cohere_vectors(family: EmbeddingFamily, body: Mapping[str, Any]) -> list[Any]:
    embeddings = body.get("embeddings")
    # Without `embedding_types` Cohere answers `embeddings_floats`, a list of vectors; with
    # it, `embeddings_by_type`, an object keyed by type. Accept both so a body built with
    # either request shape reads the same.
    if isinstance(embeddings, Mapping):
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list):
        raise _malformed(family, "no list of float `embeddings`")
    return embeddings


_VectorReader = Callable[[EmbeddingFamily, Mapping[str, Any]], list[Any]]

_VECTOR_READERS: dict[EmbeddingFamily, _VectorReader] = {
    EmbeddingFamily.TITAN_TEXT_V1: _titan_vectors,
    EmbeddingFamily.TITAN_TEXT_V2: _titan_vectors,
    EmbeddingFamily.COHERE_V3: _cohere_vectors,
}


def _float_vector(family: EmbeddingFamily, raw: object) -> list[float]:
    if not isinstance(raw, list) or not raw:
        raise _malformed(family, "an embedding is not a non-empty array")
    vector: list[float] = []
    for value in raw:
        # bool is an int subclass, and NaN/inf would make the JSON we send invalid.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _malformed(family, "an embedding holds a value that is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise _malformed(family, "an embedding holds a value that is not finite")
        vector.append(number)
    return vector


def _count(value: object) -> int | None:
    if isinstance(value, str):
        return int(value) if value.isascii() and value.isdigit() else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _malformed(family: EmbeddingFamily, detail: str) -> UpstreamError:
    return UpstreamError(
        f"Bedrock returned an embeddings body the gateway cannot read ({family}: {detail})",
        status=502,
        type="server_error",
        code=None,
        bedrock_error="MalformedResponse",
    )


# OpenAI encodings -------------------------------------------------------------------------


def _as_floats(vector: Sequence[float]) -> list[float]:
    return [float(value) for value in vector]


def _as_base64(vector: Sequence[float]) -> str:
    # `<` fixes the byte order: the SDKs decode little-endian whatever the server runs on.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


_ENCODERS: dict[str, Callable[[Sequence[float]], list[float] | str]] = {
    "float": _as_floats,
    "base64": _as_base64,
}
