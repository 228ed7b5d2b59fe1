"""`POST /v1/messages`: the Anthropic Messages API, for Claude Code and the Anthropic SDKs.

What this surface adds to the pipeline (`gateway.pipeline.handler`): the request model,
two translation pairs, the Anthropic stream encoder and the Anthropic error shape.

* Claude models: InvokeModel / InvokeModelWithResponseStream with the caller's own body
  (`translate.anthropic_messages.invoke`), so each block arrives exactly as sent; the
  stream is Claude's own events, re-framed (`invoke_stream`);
* every other chat model: Converse, through the Messages <-> Converse pair
  (`converse`, `converse_stream`).

Each candidate (the model, then its fallbacks) is called the way its family needs, so a
Claude model may fall back to Nova and back. The `anthropic-beta` header is read here
(from the request context) and filtered by `anthropic.betas`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockClient, BedrockError, BedrockStream
from gateway.errors import GatewayError
from gateway.ids import new_id
from gateway.pipeline.context import RequestContext, TokenUsage
from gateway.pipeline.surface import Parsed
from gateway.pipeline.upstream import Upstream
from gateway.schemas.anthropic import MessagesRequest
from gateway.server.bodies import json_response, validate
from gateway.server.headers import name_list
from gateway.server.streaming import estimate_tokens
from gateway.translate.anthropic_messages.betas import parse_beta_header
from gateway.translate.anthropic_messages.converse import (
    ConverseCall,
    converse_response,
    messages_to_converse,
)
from gateway.translate.anthropic_messages.converse_stream import ConverseStreamEncoder
from gateway.translate.anthropic_messages.errors import (
    anthropic_error,
    anthropic_error_body,
    anthropic_status,
)
from gateway.translate.anthropic_messages.invoke import (
    InvokeCall,
    MessagesUsage,
    invoke_response,
    is_claude,
    messages_to_invoke_body,
)
from gateway.translate.anthropic_messages.invoke_stream import InvokeStreamEncoder, sse_event
from gateway.translate.shared.errors import to_upstream_error
from gateway.translate.shared.estimate import estimate_anthropic_input_tokens
from gateway.translate.shared.guardrails import (
    converse_guardrail_config,
    invoke_guardrail_body,
    invoke_guardrail_params,
)

if TYPE_CHECKING:
    from gateway.translate.shared.guardrails import Guardrail

__all__ = ["AnthropicStreamEncoder", "Messages", "request_betas"]

logger = logging.getLogger("gateway")

_MESSAGE_START = b'{"type":"message_start"'
# At most this many names in a list header (then a count): the list comes from the caller.
_NAMES_SHOWN = 20


def request_betas(ctx: RequestContext) -> list[str]:
    """Every `anthropic-beta` header value, split, in the order sent."""
    return parse_beta_header(
        value.decode("latin-1") for name, value in ctx.headers if name == b"anthropic-beta"
    )


def _names(values: list[str]) -> str:
    return name_list(values, shown=_NAMES_SHOWN)


@dataclass(slots=True)
class _Prepared:
    request: MessagesRequest
    body: dict[str, Any]
    betas: list[str]
    invoke: InvokeCall | None = None  # built once, for every Claude candidate
    converse: ConverseCall | None = None  # built once, for every other candidate
    dropped_betas: list[str] = field(default_factory=list)


class Messages:
    route = "/v1/messages"
    model_kind = "chat"
    billable = True

    def error_body(self, error: GatewayError) -> bytes:
        return anthropic_error_body(error)

    def error_status(self, error: GatewayError) -> int:
        return anthropic_status(error)

    def parse(self, body: dict[str, Any], ctx: RequestContext) -> Parsed:
        request = validate(MessagesRequest, body)
        return Parsed(
            (request, body),
            model=request.model,
            stream=bool(request.stream),
            # Anthropic's per-end-user id: the record's end_user, never sent to Bedrock.
            end_user=request.metadata.user_id if request.metadata else None,
            end_user_param="metadata.user_id",
            prompt=body.get("messages"),
        )

    def prepare(self, parsed: Parsed, model: ResolvedModel, ctx: RequestContext) -> _Prepared:
        request, body = parsed.request
        prepared = _Prepared(request, body, request_betas(ctx))
        self._call_for(prepared, model, ctx)  # a body Bedrock cannot take is a 400 here
        return prepared

    def _call_for(
        self, prepared: _Prepared, model: ResolvedModel, ctx: RequestContext
    ) -> InvokeCall | ConverseCall:
        drop = ctx.runtime.config.drop_unsupported_params
        if is_claude(model.bedrock_id):
            if prepared.invoke is None:
                prepared.invoke = messages_to_invoke_body(
                    prepared.body,
                    header_betas=prepared.betas,
                    allowed_betas=ctx.runtime.config.anthropic.betas,
                    drop_unsupported=drop,
                )
                if prepared.invoke.dropped_betas:
                    logger.info(
                        "anthropic-beta values dropped",
                        extra={
                            "request_id": ctx.request_id,
                            "dropped_betas": prepared.invoke.dropped_betas,
                        },
                    )
            return prepared.invoke
        if prepared.converse is None:
            prepared.converse = messages_to_converse(prepared.body, drop_unsupported=drop)
        return prepared.converse

    async def respond(
        self, prepared: _Prepared, upstream: Upstream, ctx: RequestContext
    ) -> ASGIApp:
        request = prepared.request

        def estimate_input() -> int:
            # Images and documents by their sizing rules, not their base64 length (issue
            # 19, item 7): a 3.7 MB image is ~1,600 tokens, not a million.
            return estimate_anthropic_input_tokens(prepared.body)

        if request.stream:

            def start(client: BedrockClient, model: ResolvedModel) -> Awaitable[BedrockStream]:
                call = self._call_for(prepared, model, ctx)
                guardrail = ctx.guardrail_for(model)
                if isinstance(call, InvokeCall):
                    return client.invoke_model_stream(
                        model.bedrock_id,
                        invoke_guardrail_body(call.body, guardrail, stream=True),
                        region=model.region,
                        guardrail=invoke_guardrail_params(guardrail) if guardrail else None,
                    )
                return client.converse_stream(
                    model.bedrock_id,
                    _with_guardrail(call.request, guardrail, stream=True),
                    region=model.region,
                )

            used, opened = await upstream.open_stream(start, is_preamble=_is_preamble)
            encoder = AnthropicStreamEncoder(
                InvokeStreamEncoder(model=request.model)
                if is_claude(used.bedrock_id)
                else ConverseStreamEncoder(message_id=f"msg_{new_id()}", model=request.model)
            )

            def estimate_streamed_input() -> int:
                # message_start carries Claude's exact input count; else our estimate.
                return encoder.input_tokens or estimate_input()

            return upstream.stream_response(
                opened,
                encoder,
                headers=self._headers(prepared, used, ctx),
                estimate_input=estimate_streamed_input,
            )

        async def attempt(client: BedrockClient, model: ResolvedModel) -> Any:
            call = self._call_for(prepared, model, ctx)
            guardrail = ctx.guardrail_for(model)
            if isinstance(call, InvokeCall):
                answer = await client.invoke_model(
                    model.bedrock_id,
                    call.body,
                    region=model.region,
                    guardrail=invoke_guardrail_params(guardrail) if guardrail else None,
                )
                return answer.body
            return await client.converse(
                model.bedrock_id,
                _with_guardrail(call.request, guardrail, stream=False),
                region=model.region,
            )

        used, answer = await upstream.call(attempt, estimate_input=estimate_input)
        if is_claude(used.bedrock_id):
            message, usage = invoke_response(answer, model=request.model)
        else:
            message, usage = converse_response(
                answer, message_id=f"msg_{new_id()}", model=request.model
            )
            if not answer.get("usage"):
                ctx.estimated = True
                usage.input_tokens = estimate_input()
        _take(ctx.usage, usage)
        if usage.guardrail_intervened:
            ctx.guardrail_intervened = True
        if ctx.runtime.config.logging.log_prompts:
            ctx.completion = message.get("content")
        return json_response(message, headers=self._headers(prepared, used, ctx))

    def _headers(
        self, prepared: _Prepared, model: ResolvedModel, ctx: RequestContext
    ) -> dict[str, str]:
        headers = {"x-gateway-model": model.bedrock_id}
        call = self._call_for(prepared, model, ctx)
        # No beta applies to Converse: there, every beta the client sent is dropped.
        dropped_betas = call.dropped_betas if isinstance(call, InvokeCall) else prepared.betas
        if dropped_betas:
            headers["x-gateway-dropped-betas"] = _names(dropped_betas)
        if call.dropped_params:
            headers["x-gateway-dropped-params"] = _names(call.dropped_params)
        return headers


def _is_preamble(event: dict[str, Any]) -> bool:
    """Before the first content: Converse's messageStart, Claude's message_start."""
    if "messageStart" in event:
        return True
    chunk = event.get("chunk")
    raw = chunk.get("bytes") if isinstance(chunk, dict) else None
    return isinstance(raw, bytes) and raw.startswith(_MESSAGE_START)


def _with_guardrail(
    request: dict[str, Any], guardrail: Guardrail | None, *, stream: bool
) -> dict[str, Any]:
    """The Converse request of one candidate, with its guardrail (the call is built once
    for every candidate, and each may have a guardrail of its own)."""
    if guardrail is None:
        return request
    return {**request, "guardrailConfig": converse_guardrail_config(guardrail, stream=stream)}


def _take(usage: TokenUsage, seen: MessagesUsage) -> None:
    usage.input_tokens = seen.input_tokens
    usage.output_tokens = seen.output_tokens
    usage.cache_read_tokens = seen.cache_read_tokens
    usage.cache_write_tokens = seen.cache_write_tokens
    usage.cache_write_1h_tokens = seen.cache_write_1h_tokens


class AnthropicStreamEncoder:
    """Either Messages stream translator as the pipeline's `StreamEncoder`."""

    __slots__ = ("_translator",)

    def __init__(self, translator: InvokeStreamEncoder | ConverseStreamEncoder) -> None:
        self._translator = translator

    @property
    def output_chars(self) -> int:
        return self._translator.output_chars

    @property
    def unknown_events(self) -> int:
        return self._translator.unknown_events

    @property
    def input_tokens(self) -> int:
        return self._translator.usage.input_tokens

    @property
    def guardrail_intervened(self) -> bool:
        return self._translator.guardrail_intervened

    def feed(self, event: dict[str, Any]) -> bytes:
        return self._translator.feed(event)

    def close(self) -> bytes:
        return self._translator.flush()

    def fail(self, error: BedrockError) -> bytes:
        """A failure after the first byte: Anthropic's `event: error`, and the stream ends."""
        return sse_event("error", anthropic_error(to_upstream_error(error.name, error.message)))

    def settle(self, ctx: RequestContext) -> bool:
        translator = self._translator
        # Claude's usage is final only once its stream has ended (message_delta counts up).
        done = (
            translator.stopped
            if isinstance(translator, InvokeStreamEncoder)
            else translator.usage_reported
        )
        if not done:
            return False
        _take(ctx.usage, translator.usage)
        return True

    def estimated_output_tokens(self) -> int:
        return max(self._translator.usage.output_tokens, estimate_tokens(self.output_chars))

    def completion(self) -> Any:
        return None
