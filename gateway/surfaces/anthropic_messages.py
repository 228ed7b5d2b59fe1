"""`POST /v1/messages`: the Anthropic Messages API, for Claude Code and the Anthropic SDKs.

Glue, as `openai_chat` is: the same key, allow-list, admission, retries, fallbacks and
ledger as every billable route, and every wire decision in
`gateway.translate.anthropic_messages`. Two ways to Bedrock:

* Claude models: InvokeModel / InvokeModelWithResponseStream with the caller's own body
  (`translate.anthropic_messages.invoke`), so each block arrives exactly as sent; the
  stream is re-framed event by event (`invoke_stream`);
* every other chat model: Converse, through the Messages <-> Converse pair
  (`gateway.surfaces.anthropic_converse`).

A stream is read up to its first content event before the response starts, so that a
refusal or an early exception frame is still an HTTP error with the right status (in the
Anthropic shape: `RequestMiddleware` renders every error of a `/v1/messages` route so),
or a retry, or a fallback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError, BedrockStream
from gateway.bedrock.retries import FIRST_TOKEN_TIMEOUT, call_with_fallbacks
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.schemas.anthropic import MessagesRequest
from gateway.server.bodies import json_response, read_json, validate
from gateway.server.byte_stream import ByteStreamResponse
from gateway.server.streaming import estimate_tokens
from gateway.surfaces.anthropic_common import (
    error_event,
    record_model,
    record_usage,
    request_betas,
)
from gateway.surfaces.anthropic_converse import converse_messages
from gateway.surfaces.openai_chat import _deadline, _while_connected, resolve_for_caller
from gateway.translate.anthropic_messages.invoke import (
    InvokeCall,
    invoke_response,
    is_claude,
    messages_to_invoke_body,
)
from gateway.translate.anthropic_messages.invoke_stream import InvokeStreamEncoder
from gateway.usage.record import UsageRecord

__all__ = ["messages"]

logger = logging.getLogger("gateway")

_MESSAGE_START = b'{"type":"message_start"'


async def messages(request: Request) -> Response | ASGIApp:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    body = await read_json(request, runtime.config.server.max_body_bytes)
    parsed = validate(MessagesRequest, body)
    record.stream = bool(parsed.stream)
    # Anthropic's per-end-user id: the record's end_user; never sent on to Bedrock.
    record.end_user = parsed.metadata.user_id if parsed.metadata else None
    if runtime.config.logging.log_prompts:
        record.extra["prompt"] = body.get("messages")
    model = resolve_for_caller(request, parsed.model, kind="chat")
    betas = request_betas(request)
    if not is_claude(model.bedrock_id):
        return await converse_messages(request, parsed, body, model, betas)
    call = messages_to_invoke_body(
        body,
        header_betas=betas,
        allowed_betas=runtime.config.anthropic.betas,
        drop_unsupported=runtime.config.drop_unsupported_params,
    )  # bad input is a 400 before any limit is charged
    if call.dropped_betas:
        logger.info(
            "anthropic-beta values dropped",
            extra={"request_id": record.request_id, "dropped_betas": call.dropped_betas},
        )
    record.extra["admission"] = await gateway.limiter.admit(request.state.principal)
    # The body is Claude's own: only Claude fallbacks can take it as it is.
    candidates = [model, *(m for m in runtime.catalog.fallbacks(model) if is_claude(m.bedrock_id))]

    def on_error(candidate: ResolvedModel, exc: BedrockError) -> None:
        record_model(record, candidate)
        record.error_type = exc.name
        gateway.metrics.upstream_errors.labels(candidate.metric_label, exc.name).inc()

    if parsed.stream:

        async def attempt_stream(candidate: ResolvedModel) -> _OpenStream:
            return await _open_stream(gateway, candidate, call.body)

        used, opened = await call_with_fallbacks(
            candidates, attempt_stream, policy=gateway.retry_policy, on_error=on_error
        )
        record_model(record, used)
        record.error_type = None
        encoder = InvokeStreamEncoder(model=parsed.model)

        def settle(disconnected: bool) -> None:
            if encoder.usage_reported and (encoder.metrics_seen or not disconnected):
                record_usage(record, encoder.usage)
                return
            # Bedrock's counts never arrived (client gone, stream cut): ours, flagged.
            record.estimated = True
            record.input_tokens = max(encoder.usage.input_tokens, estimate_tokens(len(call.body)))
            record.output_tokens = max(
                encoder.usage.output_tokens, estimate_tokens(encoder.output_chars)
            )

        return ByteStreamResponse(
            opened.upstream,
            opened.events,
            encoder,
            prefetched=opened.prefetched,
            record=record,
            started=request.state.started,
            headers=_headers(used, call),
            error_event=error_event,
            settle=settle,
        )

    async def attempt(candidate: ResolvedModel) -> bytes:
        timeout_s = candidate.config.ttft_timeout_s if candidate.config else None
        try:
            async with _deadline(timeout_s):  # the whole answer is the first token here
                result = await gateway.bedrock.invoke_model(
                    candidate.bedrock_id, call.body, region=candidate.region
                )
        except TimeoutError:
            raise BedrockError(FIRST_TOKEN_TIMEOUT, f"no answer within {timeout_s} s") from None
        return result.body

    try:
        used, answer = await _while_connected(
            request.receive,
            call_with_fallbacks(
                candidates, attempt, policy=gateway.retry_policy, on_error=on_error
            ),
        )
    except ClientDisconnect:
        record.estimated = True
        record.input_tokens = estimate_tokens(len(call.body))
        raise
    record_model(record, used)
    record.error_type = None
    message, usage = invoke_response(answer, model=parsed.model)
    record_usage(record, usage)
    return json_response(message, headers=_headers(used, call))


@dataclass(slots=True)
class _OpenStream:
    upstream: BedrockStream
    events: AsyncIterator[dict[str, Any]]
    prefetched: list[dict[str, Any]]


async def _open_stream(gateway: Gateway, model: ResolvedModel, body: bytes) -> _OpenStream:
    """InvokeModelWithResponseStream, read past `message_start` to the first content event,
    within the model's `ttft_timeout_s` (else the next fallback, or 504)."""
    upstream: BedrockStream | None = None
    prefetched: list[dict[str, Any]] = []
    timeout_s = model.config.ttft_timeout_s if model.config else None
    try:
        async with _deadline(timeout_s):
            upstream = await gateway.bedrock.invoke_model_stream(
                model.bedrock_id, body, region=model.region
            )
            events = aiter(upstream)
            async for event in events:
                prefetched.append(event)
                chunk = event.get("chunk")
                raw = chunk.get("bytes") if isinstance(chunk, dict) else None
                if not (isinstance(raw, bytes) and raw.startswith(_MESSAGE_START)):
                    break
    except TimeoutError:
        if upstream is not None:
            await upstream.aclose()
        raise BedrockError(FIRST_TOKEN_TIMEOUT, f"no first token within {timeout_s} s") from None
    except BaseException:
        if upstream is not None:
            await upstream.aclose()
        raise
    return _OpenStream(upstream, events, prefetched)


def _headers(model: ResolvedModel, call: InvokeCall) -> dict[str, str]:
    headers = {"x-gateway-model": model.bedrock_id}
    _list_header(headers, "x-gateway-dropped-betas", call.dropped_betas)
    _list_header(headers, "x-gateway-dropped-params", call.dropped_params)
    return headers


def _list_header(headers: dict[str, str], name: str, values: Iterable[str]) -> None:
    joined = ",".join(values)
    if joined:
        headers[name] = joined
