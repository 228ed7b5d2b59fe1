"""`POST /v1/chat/completions`: validate, resolve, translate, call Bedrock, translate back.

The handler is glue: every decision about the wire formats lives in `gateway.translate`,
every decision about who may call what in `gateway.auth` and `gateway.catalog`. Streams
call `converse_stream` *before* the response starts, so that a refusal from Bedrock is
still an ordinary HTTP error with the right status.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.bedrock import BedrockError
from gateway.catalog import ResolvedModel
from gateway.errors import InvalidRequestError, PermissionDeniedError, UpstreamError
from gateway.http import json_response, read_json, validate
from gateway.schemas.openai import ChatCompletionRequest
from gateway.service import Gateway, Runtime
from gateway.streaming import SSEResponse, estimate_tokens
from gateway.translate.errors import to_upstream_error
from gateway.translate.request import openai_to_converse_request
from gateway.translate.response import converse_to_openai_response
from gateway.translate.stream import StreamTranslator
from gateway.usage.record import UsageRecord

__all__ = ["chat_completions", "resolve_for_caller", "upstream_failure"]


def resolve_for_caller(request: Request, name: str, *, kind: str) -> ResolvedModel:
    """The model a caller asked for, if its key may use it and it serves this route."""
    runtime: Runtime = request.state.runtime
    record: UsageRecord = request.state.usage
    model = runtime.catalog.resolve(name)
    record.model = model.public_name
    record.bedrock_model_id = model.bedrock_id
    record.extra["model_label"] = model.metric_label
    if not request.state.principal.may_use(name, model.public_name):
        raise PermissionDeniedError(
            f"This API key is not allowed to use the model '{name}'.",
            param="model",
            code="model_not_allowed",
        )
    if model.kind != kind:
        route = "/v1/embeddings" if model.kind == "embedding" else "/v1/chat/completions"
        raise InvalidRequestError(
            f"'{name}' is a {model.kind} model; call it through {route}.",
            param="model",
            code="wrong_model_kind",
        )
    return model


def upstream_failure(record: UsageRecord, exc: BedrockError) -> UpstreamError:
    record.extra["upstream_error"] = exc.name
    return to_upstream_error(exc.name, exc.message)


async def chat_completions(request: Request) -> Response | ASGIApp:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    body = await read_json(request, runtime.config.server.max_body_bytes)
    chat = validate(ChatCompletionRequest, body)
    record.stream = bool(chat.stream)
    record.end_user = chat.user
    model = resolve_for_caller(request, chat.model, kind="chat")
    call = openai_to_converse_request(
        chat, model_id=model.bedrock_id, drop_unsupported=runtime.config.drop_unsupported_params
    )
    headers = {"x-gateway-model": model.bedrock_id}
    if call.dropped:
        headers["x-gateway-dropped-params"] = ",".join(call.dropped)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    if chat.stream:
        try:
            events = await gateway.bedrock.converse_stream(
                model.bedrock_id, call.request, region=model.region
            )
        except BedrockError as exc:
            raise upstream_failure(record, exc) from None
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        translator = StreamTranslator(
            completion_id=completion_id,
            model=chat.model,
            created=created,
            include_usage=include_usage,
            tool_names=call.tool_names,
        )
        return SSEResponse(
            events,
            translator,
            record=record,
            started=request.state.started,
            headers=headers,
            estimate_input_tokens=lambda: _estimate_input(call.request),
        )

    try:
        response = await gateway.bedrock.converse(
            model.bedrock_id, call.request, region=model.region
        )
    except BedrockError as exc:
        raise upstream_failure(record, exc) from None
    usage = response.get("usage")
    if usage:
        record.input_tokens = int(usage.get("inputTokens", 0))
        record.output_tokens = int(usage.get("outputTokens", 0))
        record.cache_read_tokens = int(usage.get("cacheReadInputTokens", 0) or 0)
        record.cache_write_tokens = int(usage.get("cacheWriteInputTokens", 0) or 0)
    else:  # Bedrock always sends usage; if it ever does not, say the numbers are ours
        record.estimated = True
        record.input_tokens = _estimate_input(call.request)
    data = converse_to_openai_response(
        response,
        completion_id=completion_id,
        model=chat.model,
        created=created,
        tool_names=call.tool_names,
    )
    return json_response(data, headers=headers)


def _estimate_input(converse_request: Mapping[str, Any]) -> int:
    """Rough input size for the rare record Bedrock's usage never reached."""
    characters = 0
    for block in converse_request.get("system", ()):
        characters += len(block.get("text", ""))
    for message in converse_request.get("messages", ()):
        for block in message.get("content", ()):
            text = block.get("text")
            characters += len(text) if isinstance(text, str) else 16
    return estimate_tokens(characters)
