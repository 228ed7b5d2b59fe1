"""`/v1/messages` for chat models that are not Claude: Messages -> Converse -> Messages.

The same admission, retries, fallbacks and ledger as the Claude path in
`gateway.surfaces.anthropic_messages`; only the translation pair differs
(`gateway.translate.anthropic_messages.converse` / `converse_stream`). No
`anthropic-beta` applies to Converse, so every beta a client sent is listed as dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError, BedrockStream
from gateway.bedrock.retries import call_with_fallbacks
from gateway.ids import new_id
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.schemas.anthropic import MessagesRequest
from gateway.server.bodies import json_response
from gateway.server.byte_stream import ByteStreamResponse
from gateway.server.streaming import estimate_tokens
from gateway.surfaces.anthropic_common import error_event, record_model, record_usage
from gateway.surfaces.openai_chat import _while_connected
from gateway.translate.anthropic_messages.converse import (
    ConverseCall,
    converse_response,
    messages_to_converse,
)
from gateway.translate.anthropic_messages.converse_stream import ConverseStreamEncoder
from gateway.translate.anthropic_messages.invoke import MessagesUsage, is_claude
from gateway.usage.record import UsageRecord

__all__ = ["converse_messages"]


@dataclass(slots=True)
class _OpenStream:
    upstream: BedrockStream
    events: AsyncIterator[dict[str, Any]]
    prefetched: list[dict[str, Any]]


async def converse_messages(
    request: Request,
    parsed: MessagesRequest,
    body: dict[str, Any],
    model: ResolvedModel,
    betas: list[str],
) -> Response | ASGIApp:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    call = messages_to_converse(body, drop_unsupported=runtime.config.drop_unsupported_params)
    record.extra["admission"] = await gateway.limiter.admit(request.state.principal)
    candidates = [
        model,
        *(m for m in runtime.catalog.fallbacks(model) if not is_claude(m.bedrock_id)),
    ]
    headers = _headers(call, betas)
    message_id = f"msg_{new_id()}"

    def on_error(candidate: ResolvedModel, exc: BedrockError) -> None:
        record_model(record, candidate)
        record.error_type = exc.name
        gateway.metrics.upstream_errors.labels(candidate.metric_label, exc.name).inc()

    if parsed.stream:

        async def attempt_stream(candidate: ResolvedModel) -> _OpenStream:
            return await _open(gateway, candidate, call)

        used, opened = await call_with_fallbacks(
            candidates, attempt_stream, policy=gateway.retry_policy, on_error=on_error
        )
        record_model(record, used)
        record.error_type = None
        encoder = ConverseStreamEncoder(message_id=message_id, model=parsed.model)

        def settle(disconnected: bool) -> None:
            if encoder.usage_reported:
                record_usage(record, encoder.usage)
                return
            record.estimated = True
            record.input_tokens = _estimate_input(call)
            record.output_tokens = estimate_tokens(encoder.output_chars * 4)

        return ByteStreamResponse(
            opened.upstream,
            opened.events,
            encoder,
            prefetched=opened.prefetched,
            record=record,
            started=request.state.started,
            headers={"x-gateway-model": used.bedrock_id, **headers},
            error_event=error_event,
            settle=settle,
        )

    async def attempt(candidate: ResolvedModel) -> dict[str, Any]:
        return await gateway.bedrock.converse(
            candidate.bedrock_id, call.request, region=candidate.region
        )

    try:
        used, response = await _while_connected(
            request.receive,
            call_with_fallbacks(
                candidates, attempt, policy=gateway.retry_policy, on_error=on_error
            ),
        )
    except ClientDisconnect:
        record.estimated = True
        record.input_tokens = _estimate_input(call)
        raise
    record_model(record, used)
    record.error_type = None
    answer, usage = converse_response(response, message_id=message_id, model=parsed.model)
    record_usage(record, usage if response.get("usage") else MessagesUsage())
    if not response.get("usage"):
        record.estimated = True
        record.input_tokens = _estimate_input(call)
    return json_response(answer, headers={"x-gateway-model": used.bedrock_id, **headers})


async def _open(gateway: Gateway, model: ResolvedModel, call: ConverseCall) -> _OpenStream:
    upstream = await gateway.bedrock.converse_stream(
        model.bedrock_id, call.request, region=model.region
    )
    prefetched: list[dict[str, Any]] = []
    events = aiter(upstream)
    try:
        async for event in events:
            prefetched.append(event)
            if "messageStart" not in event:
                break
    except BaseException:
        await upstream.aclose()
        raise
    return _OpenStream(upstream, events, prefetched)


def _headers(call: ConverseCall, betas: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if betas:
        headers["x-gateway-dropped-betas"] = ",".join(betas)
    if call.dropped_params:
        headers["x-gateway-dropped-params"] = ",".join(call.dropped_params)
    return headers


def _estimate_input(call: ConverseCall) -> int:
    characters = 0
    for block in call.request.get("system", ()):
        characters += len(block.get("text", ""))
    for message in call.request.get("messages", ()):
        for block in message.get("content", ()):
            text = block.get("text")
            characters += len(text) if isinstance(text, str) else 16
    return estimate_tokens(characters)
