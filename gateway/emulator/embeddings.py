"""InvokeModel for embedding models: Amazon Titan Text Embeddings v1/v2 and Cohere Embed v3.

InvokeModel bodies are each model family's native JSON, so the family is chosen from the
model id. Vectors are derived from a hash of the text (and family and size): the same text
always gets the same vector, different texts get unrelated ones, and nothing is random.
Token counts use the emulator's one rule, a token per four characters, and travel both in
the body (Titan) and in the `X-Amzn-Bedrock-Input-Token-Count` header (both families).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from gateway.emulator.errors import ServiceError

__all__ = ["EmbeddingRequest", "embedding_family", "read_embedding_request", "render_embeddings"]

TITAN_V1 = "titan-v1"
TITAN_V2 = "titan-v2"
COHERE_V3 = "cohere-v3"
_FAMILIES = (
    ("amazon.titan-embed-text-v1", TITAN_V1),
    ("amazon.titan-embed-text-v2", TITAN_V2),
    ("cohere.embed-english-v3", COHERE_V3),
    ("cohere.embed-multilingual-v3", COHERE_V3),
)
_TITAN_KEYS = {
    TITAN_V1: ("inputText",),
    TITAN_V2: ("inputText", "dimensions", "normalize", "embeddingTypes"),
}
_COHERE_KEYS = ("texts", "input_type", "truncate", "embedding_types", "images")
_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
_COHERE_TYPES = ("float", "int8", "uint8", "binary", "ubinary")
_COHERE_MAX_TEXTS = 96
_COHERE_MAX_CHARS = 2048
_TITAN_MAX_CHARS = 50_000


def embedding_family(model_id: str) -> str | None:
    """The family an id (plain, region-prefixed or an ARN) belongs to, or None."""
    for marker, family in _FAMILIES:
        if marker in model_id:
            return family
    return None


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    family: str
    texts: list[str]
    dimensions: int
    normalize: bool
    types: tuple[str, ...] | None
    """Titan v2 `embeddingTypes` or Cohere `embedding_types`, when given."""


def _malformed(problem: str) -> ServiceError:
    # The wording of Bedrock's own rejections of native model bodies.
    return ServiceError(
        "ValidationException",
        f"Malformed input request: {problem}, please reformat your input and try again.",
    )


def _check_keys(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise _malformed(f"#: extraneous key [{key}] is not permitted")


def _types(value: Any, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise _malformed(f"#/{where}: expected a non-empty list of {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


def _read_titan(family: str, body: dict[str, Any]) -> EmbeddingRequest:
    _check_keys(body, _TITAN_KEYS[family])
    text = body.get("inputText")
    if not isinstance(text, str):
        raise _malformed("#: required key [inputText] not found")
    if not 1 <= len(text) <= _TITAN_MAX_CHARS:
        raise _malformed(f"#/inputText: expected length 1 to {_TITAN_MAX_CHARS}, got {len(text)}")
    if family == TITAN_V1:
        return EmbeddingRequest(family, [text], 1536, False, None)
    dimensions = body.get("dimensions", 1024)
    if dimensions not in (256, 512, 1024) or isinstance(dimensions, bool):
        raise _malformed("#/dimensions: must be one of 256, 512, 1024")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise _malformed("#/normalize: expected type: Boolean")
    types = body.get("embeddingTypes")
    if types is not None:
        types = _types(types, ("float", "binary"), "embeddingTypes")
    return EmbeddingRequest(family, [text], dimensions, normalize, types)


def _read_cohere(body: dict[str, Any]) -> EmbeddingRequest:
    _check_keys(body, _COHERE_KEYS)
    if "images" in body:
        raise _malformed("#/images: the emulator embeds texts only")
    texts = body.get("texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _malformed("#: required key [texts] not found or not a list of strings")
    if not 1 <= len(texts) <= _COHERE_MAX_TEXTS:
        raise _malformed(f"#/texts: expected 1 to {_COHERE_MAX_TEXTS} texts, got {len(texts)}")
    if body.get("input_type") not in _INPUT_TYPES:
        raise _malformed(f"#/input_type: must be one of {', '.join(_INPUT_TYPES)}")
    truncate = body.get("truncate", "NONE")
    if truncate not in ("NONE", "START", "END"):
        raise _malformed("#/truncate: must be one of NONE, START, END")
    kept = []
    for text in texts:
        if len(text) > _COHERE_MAX_CHARS:
            if truncate == "NONE":
                raise _malformed(f"#/texts: expected maxLength: {_COHERE_MAX_CHARS}")
            text = text[-_COHERE_MAX_CHARS:] if truncate == "START" else text[:_COHERE_MAX_CHARS]
        kept.append(text)
    types = body.get("embedding_types")
    if types is not None:
        types = _types(types, _COHERE_TYPES, "embedding_types")
    return EmbeddingRequest(COHERE_V3, kept, 1024, False, types)


def read_embedding_request(model_id: str, body: bytes) -> EmbeddingRequest:
    """Parse and validate an InvokeModel body for an embedding model."""
    family = embedding_family(model_id)
    if family is None:
        raise ServiceError(
            "ValidationException",
            "The emulator's InvokeModel supports only embedding models: "
            "amazon.titan-embed-text-v1, amazon.titan-embed-text-v2:0, "
            "cohere.embed-english-v3, cohere.embed-multilingual-v3.",
        )
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _malformed("#: expected a JSON object")
    if family == COHERE_V3:
        return _read_cohere(parsed)
    return _read_titan(family, parsed)


def token_count(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _vector(family: str, text: str, dimensions: int, normalize: bool) -> list[float]:
    seed = f"{family}\0{dimensions}\0{text}".encode()
    raw = hashlib.shake_256(seed).digest(2 * dimensions)
    values = [v / 32768.0 - 1.0 for v in struct.unpack(f">{dimensions}H", raw)]
    if normalize:
        norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
        values = [v / norm for v in values]
    return values


def _pack_bits(vector: list[float], signed: bool) -> list[int]:
    packed = []
    for start in range(0, len(vector), 8):
        byte = 0
        for value in vector[start : start + 8]:
            byte = (byte << 1) | (value > 0)
        packed.append(byte - 128 if signed else byte)
    return packed


def _cohere_by_type(vector: list[float], kind: str) -> list[float] | list[int]:
    if kind == "float":
        return vector
    if kind == "int8":
        return [max(-128, min(127, round(v * 127))) for v in vector]
    if kind == "uint8":
        return [max(0, min(255, round((v + 1) * 127.5))) for v in vector]
    return _pack_bits(vector, signed=kind == "binary")


def render_embeddings(request: EmbeddingRequest) -> tuple[bytes, int]:
    """The response body and the input token count for a validated request."""
    tokens = sum(token_count(text) for text in request.texts)
    vectors = [
        _vector(request.family, text, request.dimensions, request.normalize)
        for text in request.texts
    ]
    body: dict[str, Any]
    if request.family == COHERE_V3:
        digest = hashlib.sha256("\0".join(request.texts).encode()).digest()
        body = {"id": str(uuid.UUID(bytes=digest[:16], version=4)), "texts": request.texts}
        if request.types is None:
            body["response_type"] = "embeddings_floats"
            body["embeddings"] = vectors
        else:
            body["response_type"] = "embeddings_by_type"
            body["embeddings"] = {
                kind: [_cohere_by_type(v, kind) for v in vectors] for kind in request.types
            }
    else:
        vector = vectors[0]
        body = {"embedding": vector, "inputTextTokenCount": tokens}
        if request.family == TITAN_V2:
            by_type: dict[str, list[float] | list[int]] = {}
            for kind in request.types or ("float",):
                by_type[kind] = vector if kind == "float" else [int(v > 0) for v in vector]
            body["embeddingsByType"] = by_type
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), tokens
