"""`POST /v1/embeddings` over Bedrock InvokeModel (Titan Text v1/v2, Cohere Embed v3).

OpenAI takes up to 2,048 inputs in one request; Titan embeds one text per call and Cohere
96. The calls run concurrently but bounded, so one large request cannot take the whole
connection pool. Tokens of calls that succeeded are recorded even when another call
failed: Bedrock billed them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.bedrock.client import BedrockError, InvokeResult
from gateway.errors import UnsupportedParameterError
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.schemas.openai import EmbeddingRequest
from gateway.server.bodies import json_response, read_json, validate
from gateway.server.streaming import estimate_tokens
from gateway.surfaces.openai_chat import resolve_for_caller, upstream_failure
from gateway.translate.openai_embeddings.invoke import (
    InvokeCall,
    embedding_inputs,
    embedding_vectors,
    openai_embedding_response,
    plan_embedding_calls,
)
from gateway.usage.record import UsageRecord

__all__ = ["embeddings"]

# Concurrent InvokeModel calls for one request.
_CALLS_AT_ONCE = 8
# Extra body fields we understand (sent through the SDK's `extra_body`).
_EXTRA_FIELDS = frozenset({"input_type"})


async def embeddings(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    body = await read_json(request, runtime.config.server.max_body_bytes)
    req = validate(EmbeddingRequest, body)
    record.end_user = req.user
    extras = dict(req.model_extra or {})
    for name in sorted(extras.keys() - _EXTRA_FIELDS):
        if not runtime.config.drop_unsupported_params:
            raise UnsupportedParameterError(
                f"Unrecognized request argument supplied: {name}", param=name
            )
    model = resolve_for_caller(request, req.model, kind="embedding")
    inputs = embedding_inputs(req.input)
    if runtime.config.logging.log_prompts:
        record.extra["prompt"] = inputs
    input_type = extras.get("input_type")
    calls = plan_embedding_calls(
        model_id=model.bedrock_id,
        inputs=inputs,
        dimensions=req.dimensions,
        input_type=input_type if isinstance(input_type, str) else None,
    )
    limit = asyncio.Semaphore(_CALLS_AT_ONCE)

    async def invoke(call: InvokeCall) -> InvokeResult:
        async with limit:
            return await gateway.bedrock.invoke_model(
                model.bedrock_id, call.body, region=model.region
            )

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
            call.family, answer, expected=len(call.indexes), header_tokens=result.input_token_count
        )
        if count is None:
            record.estimated = True
            count = sum(estimate_tokens(len(inputs[i])) for i in call.indexes)
        tokens += count
        for index, vector in zip(call.indexes, found, strict=True):
            vectors[index] = vector
    record.input_tokens = tokens
    if failure is not None:
        if isinstance(failure, BedrockError):
            raise upstream_failure(record, failure)
        raise failure
    data = openai_embedding_response(
        vectors, model=req.model, prompt_tokens=tokens, encoding_format=req.encoding_format
    )
    return json_response(data, headers={"x-gateway-model": model.bedrock_id})
