"""`POST /v1/chat/completions`: validate, resolve, translate, call Bedrock, translate back.

The handler is glue: every decision about the wire formats lives in `gateway.translate`,
who may call what in `gateway.keys.index` / `gateway.bedrock.catalog` /
`gateway.limits`, and how hard to try in `gateway.bedrock.retries`. A stream is read up to its first content event *before* the
response starts, so that a refusal, an early exception frame or a silent model is still an
ordinary HTTP error with the right status, or a retry, or a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError, BedrockStream
from gateway.bedrock.retries import FIRST_TOKEN_TIMEOUT, call_with_fallbacks
from gateway.errors import InvalidRequestError, PermissionDeniedError, UpstreamError
from gateway.ids import new_id
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.schemas.openai import ChatCompletionRequest
from gateway.server.bodies import json_response, read_json, validate
from gateway.server.streaming import SSEResponse, estimate_tokens, wait_for_disconnect
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
    remote_image_urls,
)
from gateway.translate.openai_chat.response import converse_to_openai_response
from gateway.translate.openai_chat.stream import StreamTranslator
from gateway.translate.shared.errors import to_upstream_error
from gateway.usage.record import UsageRecord

__all__ = ["chat_completions", "resolve_for_caller", "upstream_failure"]

T = TypeVar("T")


def resolve_for_caller(request: Request, name: str, *, kind: str) -> ResolvedModel:
    """The model a caller asked for, if its key may use it and it serves this route."""
    runtime: Runtime = request.state.runtime
    record: UsageRecord = request.state.usage
    model = runtime.catalog.resolve(name)
    _record_model(record, model)
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


def _record_model(record: UsageRecord, model: ResolvedModel) -> None:
    record.model = model.public_name
    record.bedrock_model_id = model.bedrock_id
    record.extra["model_label"] = model.metric_label


def upstream_failure(record: UsageRecord, exc: BedrockError) -> UpstreamError:
    """A Bedrock failure outside the retry loop (embeddings): count it, map it."""
    record.extra["upstream_error"] = exc.name
    return to_upstream_error(exc.name, exc.message)


def _options(runtime: Runtime, model: ResolvedModel) -> ModelOptions:
    config = model.config
    max_image_bytes = runtime.config.images.max_bytes
    if config is None:
        return ModelOptions(max_image_bytes=max_image_bytes)
    return ModelOptions(
        reasoning_supported=config.reasoning.supported,
        reasoning_budgets={str(k): v for k, v in config.reasoning.budgets.items()},
        auto_cache_system=config.auto_cache_system,
        max_image_bytes=max_image_bytes,
    )


_NO_DEADLINE = contextlib.nullcontext()


def _deadline(timeout_s: float | None) -> contextlib.AbstractAsyncContextManager[object]:
    """`asyncio.timeout(timeout_s)`, or nothing at all for a model without a deadline
    (most of them): a Timeout object also looks up the loop and the current task."""
    return _NO_DEADLINE if timeout_s is None else asyncio.timeout(timeout_s)


@dataclass(slots=True)
class _OpenStream:
    """A ConverseStream read up to its first content event."""

    upstream: BedrockStream
    events: AsyncIterator[dict[str, Any]]
    prefetched: list[dict[str, Any]]


async def _open_stream(gateway: Gateway, model: ResolvedModel, call: ConverseCall) -> _OpenStream:
    upstream: BedrockStream | None = None
    prefetched: list[dict[str, Any]] = []
    timeout_s = model.config.ttft_timeout_s if model.config else None
    try:
        # The deadline covers the call itself: a Bedrock that never sends its response
        # headers has not sent a first token either (outside it, such a stream waited for
        # the read timeout, minutes, instead of falling back).
        async with _deadline(timeout_s):
            upstream = await gateway.bedrock.converse_stream(
                model.bedrock_id, call.request, region=model.region
            )
            events = aiter(upstream)
            async for event in events:
                prefetched.append(event)
                if "messageStart" not in event:
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


async def _converse(gateway: Gateway, model: ResolvedModel, call: ConverseCall) -> dict[str, Any]:
    timeout_s = model.config.ttft_timeout_s if model.config else None
    try:
        # Without a stream the whole answer is the first token the client sees.
        async with _deadline(timeout_s):
            return await gateway.bedrock.converse(
                model.bedrock_id, call.request, region=model.region
            )
    except TimeoutError:
        raise BedrockError(FIRST_TOKEN_TIMEOUT, f"no answer within {timeout_s} s") from None


async def chat_completions(request: Request) -> Response | ASGIApp:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    body = await read_json(request, runtime.config.server.max_body_bytes)
    chat = validate(ChatCompletionRequest, body)
    record.stream = bool(chat.stream)
    record.end_user = chat.user
    log_prompts = runtime.config.logging.log_prompts
    if log_prompts:  # the operator asked for prompts in the access log (off by default)
        record.extra["prompt"] = body.get("messages")
    model = resolve_for_caller(request, chat.model, kind="chat")
    drop = runtime.config.drop_unsupported_params
    images = await _fetch_images(gateway, chat)
    calls: dict[str, ConverseCall] = {}

    def translated(candidate: ResolvedModel) -> ConverseCall:
        # Each fallback is translated for its own model id (some rules are per family).
        call = calls.get(candidate.bedrock_id)
        if call is None:
            call = calls[candidate.bedrock_id] = openai_to_converse_request(
                chat,
                model_id=candidate.bedrock_id,
                drop_unsupported=drop,
                options=_options(runtime, candidate),
                images=images,
            )
        return call

    translated(model)  # bad input is a 400 before any limit is charged
    record.extra["admission"] = await gateway.limiter.admit(request.state.principal)

    def on_error(candidate: ResolvedModel, exc: BedrockError) -> None:
        _record_model(record, candidate)
        record.error_type = exc.name
        gateway.metrics.upstream_errors.labels(candidate.metric_label, exc.name).inc()

    candidates = [model, *runtime.catalog.fallbacks(model)]
    completion_id = f"chatcmpl-{new_id()}"
    created = int(time.time())

    if chat.stream:

        async def attempt_stream(candidate: ResolvedModel) -> _OpenStream:
            return await _open_stream(gateway, candidate, translated(candidate))

        used, opened = await call_with_fallbacks(
            candidates, attempt_stream, policy=gateway.retry_policy, on_error=on_error
        )
        _record_model(record, used)
        record.error_type = None
        call = translated(used)
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        translator = StreamTranslator(
            completion_id=completion_id,
            model=chat.model,
            created=created,
            include_usage=include_usage,
            tool_names=call.tool_names,
            structured_output_tool=call.structured_output_tool,
        )
        return SSEResponse(
            opened.upstream,
            opened.events,
            translator,
            prefetched=opened.prefetched,
            lane=gateway.stream_lane,
            record=record,
            started=request.state.started,
            headers=_headers(used, call),
            estimate_input_tokens=lambda: _estimate_input(call.request),
            collect_completion=log_prompts,
        )

    async def attempt(candidate: ResolvedModel) -> dict[str, Any]:
        return await _converse(gateway, candidate, translated(candidate))

    try:
        used, response = await _while_connected(
            request.receive,
            call_with_fallbacks(
                candidates, attempt, policy=gateway.retry_policy, on_error=on_error
            ),
        )
    except ClientDisconnect:
        # Bedrock was asked and may bill the answer we stopped waiting for: say the numbers
        # are ours, and how many input tokens at least went out.
        record.estimated = True
        record.input_tokens = _estimate_input(translated(model).request)
        raise
    _record_model(record, used)
    record.error_type = None
    call = translated(used)
    usage = response.get("usage")
    if usage:
        record.take_bedrock_usage(usage)
    else:  # Bedrock always sends usage; if it ever does not, say the numbers are ours
        record.estimated = True
        record.input_tokens = _estimate_input(call.request)
    data = converse_to_openai_response(
        response,
        completion_id=completion_id,
        model=chat.model,
        created=created,
        tool_names=call.tool_names,
        structured_output_tool=call.structured_output_tool,
    )
    if log_prompts:
        record.extra["completion"] = data["choices"][0]["message"].get("content")
    return json_response(data, headers=_headers(used, call))


async def _while_connected(receive: Receive, work: Awaitable[T]) -> T:
    """`work`, cancelled as soon as the client disconnects: no Bedrock time, retries or
    fallbacks for an answer nobody will read. (Streams watch for this in `SSEResponse`.)

    The work runs in this task and one watcher task cancels it if the client leaves, the
    shape of `asyncio.timeout`: one task a request instead of racing two.
    """
    handler = asyncio.current_task()
    assert handler is not None, "called outside a task"
    client_left = finished = False

    def on_watcher_done(watcher: asyncio.Future[None]) -> None:
        nonlocal client_left
        if watcher.cancelled():
            return
        watcher.exception()  # a failing receive() too means nobody is reading any more
        if not finished:
            client_left = True
            handler.cancel()

    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    watcher.add_done_callback(on_watcher_done)
    try:
        return await work
    except asyncio.CancelledError:
        if client_left and handler.uncancel() == 0:
            raise ClientDisconnect() from None
        raise  # we are being cancelled ourselves
    finally:
        finished = True
        watcher.cancel()


async def _fetch_images(
    gateway: Gateway, chat: ChatCompletionRequest
) -> dict[str, tuple[str, bytes]]:
    """Remote `image_url`s fetched (behind the SSRF guard) before the pure translation."""
    urls = remote_image_urls(chat)
    if not urls:
        return {}
    fetched: dict[str, tuple[str, bytes]] = {}
    unique = {url: param for url, param in urls}
    results = await asyncio.gather(
        *(gateway.images.fetch(url, param=param) for url, param in unique.items())
    )
    for url, result in zip(unique, results, strict=True):
        fetched[url] = result
    return fetched


def _headers(model: ResolvedModel, call: ConverseCall) -> dict[str, str]:
    headers = {"x-gateway-model": model.bedrock_id}
    if call.dropped:
        headers["x-gateway-dropped-params"] = ",".join(call.dropped)
    return headers


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
