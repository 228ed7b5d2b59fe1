"""`POST /v1/embeddings`: the OpenAI embeddings surface over Bedrock InvokeModel.

Titan Text v1/v2 and Cohere Embed v3 (`gateway.translate.openai_embeddings`). OpenAI takes
up to 2,048 inputs in one request; Titan embeds one text per call and Cohere 96. The calls
run concurrently but bounded, so one large request cannot take the whole connection pool.
Tokens of calls that succeeded are recorded even when another call failed: Bedrock billed
them. Like every surface, it is admitted (rpm, tpm, budget, overload) before any call.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError, InvokeResult
from gateway.errors import GatewayError, UnsupportedParameterError
from gateway.pipeline.context import RequestContext
from gateway.pipeline.surface import Parsed
from gateway.pipeline.upstream import Upstream
from gateway.schemas.openai_embeddings import EmbeddingRequest
from gateway.server.bodies import json_response, validate
from gateway.server.sse import error_body
from gateway.server.streaming import estimate_tokens
from gateway.tokenizers import token_decoder
from gateway.translate.openai_embeddings.invoke import (
    InvokeCall,
    embedding_inputs,
    embedding_vectors,
    openai_embedding_response,
    plan_embedding_calls,
)
from gateway.translate.shared.errors import to_upstream_error

__all__ = ["Embeddings"]

# Concurrent InvokeModel calls for one request.
_CALLS_AT_ONCE = 8
# Extra body fields we understand (sent through the SDK's `extra_body`).
_EXTRA_FIELDS = frozenset({"input_type"})


class _Prepared:
    __slots__ = ("calls", "inputs", "request")

    def __init__(
        self, request: EmbeddingRequest, inputs: list[str], calls: list[InvokeCall]
    ) -> None:
        self.request = request
        self.inputs = inputs
        self.calls = calls


class Embeddings:
    route = "/v1/embeddings"
    model_kind = "embedding"
    billable = True

    def error_body(self, error: GatewayError) -> bytes:
        return error_body(error)

    def error_status(self, error: GatewayError) -> int:
        return error.status

    def parse(self, body: dict[str, Any], ctx: RequestContext) -> Parsed:
        req = validate(EmbeddingRequest, body)
        extras = req.model_extra or {}
        if not ctx.runtime.config.drop_unsupported_params:
            for name in sorted(extras.keys() - _EXTRA_FIELDS):
                raise UnsupportedParameterError(
                    f"Unrecognized request argument supplied: {name}", param=name
                )
        prompt = [req.input] if isinstance(req.input, str) else req.input
        return Parsed(req, model=req.model, end_user=req.user, prompt=prompt)

    def prepare(self, parsed: Parsed, model: ResolvedModel, ctx: RequestContext) -> _Prepared:
        req: EmbeddingRequest = parsed.request
        # Token ids (LangChain's default) back to text in the encoding of the model named.
        inputs = embedding_inputs(req.input, decode_tokens=token_decoder(req.model))
        input_type = (req.model_extra or {}).get("input_type")
        calls = plan_embedding_calls(
            model_id=model.bedrock_id,
            inputs=inputs,
            dimensions=req.dimensions,
            input_type=input_type if isinstance(input_type, str) else None,
        )
        return _Prepared(req, inputs, calls)

    async def respond(
        self, prepared: _Prepared, upstream: Upstream, ctx: RequestContext
    ) -> ASGIApp:
        model = ctx.model
        assert model is not None
        inputs = prepared.inputs
        calls = prepared.calls
        limit = asyncio.Semaphore(_CALLS_AT_ONCE)

        async def invoke(call: InvokeCall) -> InvokeResult:
            async with limit:
                result: InvokeResult = await upstream.invoke_model(call.body, model=model)
                return result

        results = await asyncio.gather(*(invoke(call) for call in calls), return_exceptions=True)
        vectors: list[list[float]] = [[] for _ in inputs]
        tokens = 0
        failure: BaseException | None = None
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            answer: Any = json.loads(result.body)
            found, count = embedding_vectors(
                call.family,
                answer,
                expected=len(call.indexes),
                header_tokens=result.input_token_count,
            )
            if count is None:
                ctx.estimated = True
                count = sum(estimate_tokens(len(inputs[i])) for i in call.indexes)
            tokens += count
            for index, vector in zip(call.indexes, found, strict=True):
                vectors[index] = vector
        ctx.usage.input_tokens = tokens
        if failure is not None:
            if isinstance(failure, BedrockError):
                raise to_upstream_error(failure.name, failure.message)
            raise failure
        data = openai_embedding_response(
            vectors,
            model=prepared.request.model,
            prompt_tokens=tokens,
            encoding_format=prepared.request.encoding_format,
        )
        return json_response(data, headers={"x-gateway-model": model.bedrock_id})
