"""`POST /v1/responses`: the OpenAI Responses API over Converse / ConverseStream.

Glue, like the chat handler: the request's rules are in `gateway.translate.
openai_responses`, the stored conversations in `gateway.responses.store`, the stored-response
routes in `gateway.surfaces.openai_responses_stored`. The order is chat's: parse, resolve
the model for this key, load the stored conversation (`previous_response_id`), translate
(a 400 here costs nothing), fetch remote images, admit, call Bedrock with retries and
fallbacks, translate back, store, and let the middleware write the one usage record.

Until the shared pipeline lands, the Bedrock calls reuse the chat handler's helpers (the
first-token deadline, the prefetch before the status is decided, the disconnect watch);
the pipeline's `Upstream` replaces them.

The reasoning codec's key comes from the usage database (`gateway.responses.store` says
why), read once per process; a store that keeps no responses (a test's fake) gets a key
made for this process, so encrypted reasoning then lasts as long as the process.

The stream is chosen by the body's `stream` flag alone: the Agents SDK streams with
`Accept: application/json`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError
from gateway.bedrock.retries import call_with_fallbacks
from gateway.errors import InvalidRequestError, NotFoundError
from gateway.ids import new_id
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.responses.store import StoredResponse
from gateway.schemas.openai_responses import InputItem, ResponsesRequest
from gateway.server.bodies import json_response, read_json, validate
from gateway.server.streaming import SSEResponse
from gateway.surfaces.openai_chat import (
    _converse,
    _estimate_input,
    _open_stream,
    _options,
    _record_model,
    _while_connected,
    resolve_for_caller,
)
from gateway.translate.openai_responses.request import ResponsesCall, converse_call, prepare
from gateway.translate.openai_responses.response import converse_to_response, request_echo
from gateway.translate.openai_responses.stream import ResponsesStream
from gateway.usage.record import UsageRecord

__all__ = ["ResponsesState", "create_response", "responses_state"]

logger = logging.getLogger("gateway")

# A stored conversation, read back as input items (it was written from validated ones).
_HISTORY: TypeAdapter[list[InputItem]] = TypeAdapter(list[InputItem])


@dataclass(slots=True)
class ResponsesState:
    """Per process: the codec key, and stored writes not yet finished (so that a
    `previous_response_id` right after a stream ended finds its response)."""

    store: Any
    key: bytes | None = None
    pending: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_purge: float = 0.0  # monotonic time of the next sweep of expired responses

    @property
    def persistent(self) -> bool:
        return hasattr(self.store, "put_response")

    async def reasoning_key(self) -> bytes:
        if self.key is None:
            async with self.lock:
                if self.key is None:
                    if self.persistent:
                        self.key = await self.store.reasoning_key()
                    else:
                        self.key = secrets.token_bytes(32)
        return self.key

    async def load(self, response_id: str, key_id: str) -> StoredResponse | None:
        task = self.pending.get(response_id)
        if task is not None:
            await asyncio.shield(task)
        if not self.persistent:
            return None
        stored: StoredResponse | None = await self.store.get_response(
            response_id, key_id=key_id, now=datetime.now(UTC)
        )
        return stored

    def save(self, stored: StoredResponse) -> None:
        if not self.persistent:
            return
        task = asyncio.ensure_future(self.store.put_response(stored))
        self.pending[stored.id] = task
        task.add_done_callback(lambda _: self.pending.pop(stored.id, None))
        self._maybe_purge()

    def _maybe_purge(self) -> None:
        """Delete expired responses at most once an hour per process, in the background:
        expired rows are already invisible to reads, this only reclaims their space."""
        now = time.monotonic()
        if now < self.next_purge:
            return
        self.next_purge = now + _PURGE_INTERVAL_S
        task = asyncio.ensure_future(self.store.purge_responses(now=datetime.now(UTC)))
        self.pending["purge"] = task
        task.add_done_callback(_log_purge_failure)
        task.add_done_callback(lambda _: self.pending.pop("purge", None))


_PURGE_INTERVAL_S = 3600.0


def _log_purge_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("purging expired stored responses failed: %r", task.exception())


def responses_state(request: Request) -> ResponsesState:
    gateway: Gateway = request.app.state.gateway
    state: ResponsesState | None = getattr(request.app.state, "responses", None)
    if state is None or state.store is not gateway.recorder.store:
        state = ResponsesState(store=gateway.recorder.store)
        request.app.state.responses = state
    return state


def _input_items(req: ResponsesRequest, body: dict[str, Any]) -> list[dict[str, Any]]:
    """This request's input as stored items, each with an id (for `/input_items`)."""
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    items: list[dict[str, Any]] = []
    for item in raw or ():
        item = dict(item)
        kind = item.setdefault("type", "message")
        if kind == "message" and isinstance(item.get("content"), str):
            # As OpenAI lists them: a string content is one text part.
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        if "id" not in item:
            prefix = {"message": "msg", "function_call": "fc", "reasoning": "rs"}.get(kind, "item")
            item["id"] = f"{prefix}_{new_id()}"
        items.append(item)
    return items


def _with_encrypted(
    output: list[dict[str, Any]], encrypted: dict[str, str]
) -> list[dict[str, Any]]:
    return [
        {**item, "encrypted_content": encrypted[item["id"]]} if item["id"] in encrypted else item
        for item in output
    ]


async def create_response(request: Request) -> Response | ASGIApp:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    body = await read_json(request, runtime.config.server.max_body_bytes)
    req = validate(ResponsesRequest, body)
    record.stream = bool(req.stream)
    record.end_user = req.user or req.safety_identifier
    log_prompts = runtime.config.logging.log_prompts
    if log_prompts:
        record.extra["prompt"] = body.get("input")
    if req.input is None and req.previous_response_id is None:
        raise InvalidRequestError("'input' is required.", param="input")
    model = resolve_for_caller(request, req.model, kind="chat")
    principal = request.state.principal
    state = responses_state(request)
    key = await state.reasoning_key()
    history: list[InputItem] = []
    previous_context: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        previous = await state.load(req.previous_response_id, principal.key_id)
        if previous is None:
            raise NotFoundError(
                f"No stored response '{req.previous_response_id}' for this API key (it was "
                "never stored, has expired, was deleted, or belongs to another key).",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        previous_context = previous.context
        history = _HISTORY.validate_python(previous_context)
    drop = runtime.config.drop_unsupported_params
    prepared = prepare(
        req,
        reasoning_key=key,
        reasoning_supported=bool(model.config and model.config.reasoning.supported),
        drop_unsupported=drop,
        history=history,
    )
    images = await _fetch(gateway, prepared.remote_image_urls())
    calls: dict[str, ResponsesCall] = {}

    def translated(candidate: ResolvedModel) -> ResponsesCall:
        call = calls.get(candidate.bedrock_id)
        if call is None:
            call = calls[candidate.bedrock_id] = converse_call(
                prepared,
                model_id=candidate.bedrock_id,
                drop_unsupported=drop,
                options=_options(runtime, candidate),
                images=images,
            )
        return call

    translated(model)  # bad input is a 400 before any limit is charged
    record.extra["admission"] = await gateway.limiter.admit(principal)

    def on_error(candidate: ResolvedModel, exc: BedrockError) -> None:
        _record_model(record, candidate)
        record.error_type = exc.name
        gateway.metrics.upstream_errors.labels(candidate.metric_label, exc.name).inc()

    candidates = [model, *runtime.catalog.fallbacks(model)]
    response_id = f"resp_{new_id()}"
    created = int(time.time())
    store_on = req.store if req.store is not None else runtime.config.responses.store
    echo = request_echo(req, store=store_on)
    input_items = _input_items(req, body)

    def keep(response: dict[str, Any], encrypted: dict[str, str]) -> None:
        if not store_on:
            return
        now = datetime.now(UTC)
        context = [*previous_context, *input_items, *_with_encrypted(response["output"], encrypted)]
        state.save(
            StoredResponse(
                id=response_id,
                key_id=principal.key_id,
                created_at=now,
                expires_at=now + timedelta(days=runtime.config.responses.retention_days),
                response=response,
                input_items=input_items,
                context=context,
            )
        )

    if req.stream:

        async def attempt_stream(candidate: ResolvedModel) -> Any:
            return await _open_stream(gateway, candidate, translated(candidate).converse)

        used, opened = await call_with_fallbacks(
            candidates, attempt_stream, policy=gateway.retry_policy, on_error=on_error
        )
        _record_model(record, used)
        record.error_type = None
        call = translated(used)
        stream = ResponsesStream(
            echo,
            response_id=response_id,
            model=req.model,
            created_at=created,
            tool_names=call.tool_names,
            namespaced=call.namespaced,
            structured_output_tool=call.converse.structured_output_tool,
            reasoning_key=key,
            expose_reasoning=call.include_reasoning,
        )
        return SSEResponse(
            opened.upstream,
            opened.events,
            _StreamAdapter(stream, keep),
            prefetched=opened.prefetched,
            lane=gateway.stream_lane,
            record=record,
            started=request.state.started,
            headers=_headers(used, call),
            estimate_input_tokens=lambda: _estimate_input(call.converse.request),
            encode=_identity,
            done=b"",
            fail=lambda exc: stream.fail(exc.name, exc.message),
        )

    async def attempt(candidate: ResolvedModel) -> dict[str, Any]:
        return await _converse(gateway, candidate, translated(candidate).converse)

    try:
        used, result = await _while_connected(
            request.receive,
            call_with_fallbacks(
                candidates, attempt, policy=gateway.retry_policy, on_error=on_error
            ),
        )
    except ClientDisconnect:
        record.estimated = True
        record.input_tokens = _estimate_input(translated(model).converse.request)
        raise
    _record_model(record, used)
    record.error_type = None
    call = translated(used)
    usage = result.get("usage")
    if usage:
        record.take_bedrock_usage(usage)
    else:
        record.estimated = True
        record.input_tokens = _estimate_input(call.converse.request)
    encrypted: dict[str, str] = {}
    data = converse_to_response(
        result,
        echo,
        response_id=response_id,
        model=req.model,
        created_at=created,
        tool_names=call.tool_names,
        namespaced=call.namespaced,
        structured_output_tool=call.converse.structured_output_tool,
        reasoning_key=key,
        expose_reasoning=call.include_reasoning,
        encrypted=encrypted,
    )
    keep(data, encrypted)
    if log_prompts:
        record.extra["completion"] = "".join(
            part["text"]
            for item in data["output"]
            if item["type"] == "message"
            for part in item["content"]
        )
    return json_response(data, headers=_headers(used, call))


def _identity(data: bytes) -> bytes:
    return data


class _StreamAdapter:
    """A `ResponsesStream` in the shape `SSEResponse` drives: `feed` and `flush` give
    lists of byte strings; the opening events go out with the first ones. When the
    stream completes, the final response is stored."""

    def __init__(self, stream: ResponsesStream, keep: Any) -> None:
        self._stream = stream
        self._keep = keep
        self._started = False

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        data = self._stream.feed(event)
        if not self._started:
            self._started = True
            data = self._stream.start() + data
        return [data] if data else []

    def flush(self) -> list[bytes]:
        data = self._stream.finish()
        if not self._started:
            self._started = True
            data = self._stream.start() + data
        final = self._stream.final
        if final is not None and final["status"] != "failed":
            self._keep(final, self._stream.encrypted)
        return [data] if data else []

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._stream.usage

    @property
    def unknown_events(self) -> int:
        return self._stream.unknown_events

    @property
    def output_chars(self) -> int:
        return self._stream.output_chars

    def estimated_output_tokens(self) -> int:
        return self._stream.estimated_output_tokens()


async def _fetch(gateway: Gateway, urls: list[tuple[str, str]]) -> dict[str, tuple[str, bytes]]:
    """Remote `input_image` URLs fetched behind the SSRF guard, before the pure translation."""
    unique = dict(urls)
    if not unique:
        return {}
    results = await asyncio.gather(
        *(gateway.images.fetch(url, param=param) for url, param in unique.items())
    )
    return dict(zip(unique, results, strict=True))


def _headers(model: ResolvedModel, call: ResponsesCall) -> dict[str, str]:
    headers = {"x-gateway-model": model.bedrock_id}
    if call.dropped:
        headers["x-gateway-dropped-params"] = ",".join(call.dropped)
    if call.dropped_tools:
        headers["x-gateway-dropped-tools"] = ",".join(call.dropped_tools)
    return headers
