"""`POST /v1/chat/completions`: the OpenAI chat surface over Converse / ConverseStream.

What this surface adds to the pipeline (`gateway.pipeline.handler`): the request model,
the OpenAI-chat <-> Converse translation pair (`gateway.translate.openai_chat`), the
chunk encoder for streams, and the OpenAI error shape. Each fallback model is translated
for its own id (some rules are per family), once. Remote images are fetched only after
admission; before it, the request is checked with stand-in bytes, so a request Bedrock
could never take is a 400 that costs no rpm.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError
from gateway.errors import GatewayError
from gateway.ids import new_id
from gateway.pipeline.context import RequestContext
from gateway.pipeline.surface import Parsed
from gateway.pipeline.upstream import Upstream
from gateway.schemas.openai import ChatCompletionRequest
from gateway.server.bodies import json_response, validate
from gateway.server.sse import DONE, ChunkTemplate, encode_chunk, encode_error, error_body
from gateway.surfaces.converse_calls import (
    STAND_IN_IMAGE,
    check_image_count,
    estimate_converse_input,
    is_message_start,
    model_options,
    response_headers,
    settle_answer,
)
from gateway.translate.openai_chat.request import (
    ConverseCall,
    openai_to_converse_request,
    remote_image_urls,
)
from gateway.translate.openai_chat.response import converse_to_openai_response
from gateway.translate.openai_chat.stream import StreamTranslator
from gateway.translate.shared.errors import to_upstream_error
from gateway.translate.shared.guardrails import GUARDRAIL_INTERVENED, converse_guardrail_config
from gateway.translate.shared.request_metadata import gateway_request_metadata

__all__ = ["ChatCompletions", "ChatStreamEncoder"]


class _Prepared:
    __slots__ = ("calls", "chat", "first", "images", "remote")

    def __init__(self, chat: ChatCompletionRequest, first: ConverseCall, remote: dict[str, str]):
        self.chat = chat
        self.first = first
        self.remote = remote
        self.calls: dict[str, ConverseCall] = {}
        self.images: dict[str, tuple[str, bytes]] = {}


class ChatCompletions:
    route = "/v1/chat/completions"
    model_kind = "chat"
    billable = True

    def error_body(self, error: GatewayError) -> bytes:
        return error_body(error)

    def error_status(self, error: GatewayError) -> int:
        return error.status

    def parse(self, body: dict[str, Any], ctx: RequestContext) -> Parsed:
        chat = validate(ChatCompletionRequest, body)
        return Parsed(
            chat,
            model=chat.model,
            stream=bool(chat.stream),
            end_user=chat.user,
            prompt=body.get("messages"),
        )

    def prepare(self, parsed: Parsed, model: ResolvedModel, ctx: RequestContext) -> _Prepared:
        chat: ChatCompletionRequest = parsed.request
        remote = dict(remote_image_urls(chat))
        stand_ins = dict.fromkeys(remote, STAND_IN_IMAGE)
        first = self._translate(chat, model, ctx, stand_ins)
        check_image_count(first.request, param="messages")
        prepared = _Prepared(chat, first, remote)
        if not remote:
            prepared.calls[model.bedrock_id] = first
        return prepared

    async def respond(
        self, prepared: _Prepared, upstream: Upstream, ctx: RequestContext
    ) -> ASGIApp:
        chat = prepared.chat
        prepared.images = await upstream.fetch_images(prepared.remote)

        def translated(candidate: ResolvedModel) -> ConverseCall:
            call = prepared.calls.get(candidate.bedrock_id)
            if call is None:
                call = prepared.calls[candidate.bedrock_id] = self._translate(
                    chat, candidate, ctx, prepared.images
                )
            return call

        def estimate_input() -> int:
            return estimate_converse_input(prepared.first.request)

        completion_id = f"chatcmpl-{new_id()}"
        created = int(time.time())
        if chat.stream:
            used, opened = await upstream.open_stream(
                lambda client, m: client.converse_stream(
                    m.bedrock_id, translated(m).request, region=m.region
                ),
                is_preamble=is_message_start,
            )
            call = translated(used)
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            encoder = ChatStreamEncoder(
                StreamTranslator(
                    completion_id=completion_id,
                    model=chat.model,
                    created=created,
                    include_usage=include_usage,
                    tool_names=call.tool_names,
                    structured_output_tool=call.structured_output_tool,
                ),
                collect=ctx.runtime.config.logging.log_prompts,
            )
            return upstream.stream_response(
                opened,
                encoder,
                headers=response_headers(used, call.dropped),
                estimate_input=estimate_input,
            )

        used, response = await upstream.call(
            lambda client, m: client.converse(m.bedrock_id, translated(m).request, region=m.region),
            estimate_input=estimate_input,
        )
        call = translated(used)
        settle_answer(ctx, response, estimate_input=estimate_input)
        data = converse_to_openai_response(
            response,
            completion_id=completion_id,
            model=chat.model,
            created=created,
            tool_names=call.tool_names,
            structured_output_tool=call.structured_output_tool,
        )
        if ctx.runtime.config.logging.log_prompts:
            ctx.completion = data["choices"][0]["message"].get("content")
        return json_response(data, headers=response_headers(used, call.dropped))

    @staticmethod
    def _translate(
        chat: ChatCompletionRequest,
        model: ResolvedModel,
        ctx: RequestContext,
        images: Mapping[str, tuple[str, bytes]],
    ) -> ConverseCall:
        runtime = ctx.runtime
        principal = ctx.principal
        metadata = (
            gateway_request_metadata(principal.key_id, principal.team, principal.user)
            if runtime.config.bedrock.request_metadata and principal is not None
            else None
        )
        guardrail = ctx.guardrail_for(model)
        return openai_to_converse_request(
            chat,
            model_id=model.bedrock_id,
            drop_unsupported=runtime.config.drop_unsupported_params,
            options=model_options(runtime.config.images.max_bytes, model),
            images=images,
            request_metadata=metadata,
            guardrail=converse_guardrail_config(guardrail, stream=bool(chat.stream))
            if guardrail is not None
            else None,
        )


class ChatStreamEncoder:
    """ConverseStream events as `chat.completion.chunk` SSE bytes (`StreamEncoder`)."""

    __slots__ = ("_collected", "_content", "_translator")

    def __init__(self, translator: StreamTranslator, *, collect: bool = False) -> None:
        self._translator = translator
        # Most events are text deltas, and their chunks differ only in the text.
        self._content = ChunkTemplate(translator.content_chunk)
        # Only with `logging.log_prompts`: the streamed text, for the access line.
        self._collected: list[str] | None = [] if collect else None

    @property
    def output_chars(self) -> int:
        return self._translator.output_chars

    @property
    def unknown_events(self) -> int:
        return self._translator.unknown_events

    @property
    def guardrail_intervened(self) -> bool:
        return self._translator.stop_reason == GUARDRAIL_INTERVENED

    def feed(self, event: dict[str, Any]) -> bytes:
        text = self._translator.content_delta(event)
        if text is not None:
            if self._collected is not None:
                self._collected.append(text)
            return self._content.encode(text)
        chunks = self._translator.feed(event)
        if not chunks:
            return b""
        if self._collected is not None:
            self._collect(chunks)
        if len(chunks) == 1:
            return encode_chunk(chunks[0])
        return b"".join([encode_chunk(chunk) for chunk in chunks])

    def close(self) -> bytes:
        if self._translator.error is not None:
            # A malformed answer already ended with its error: no [DONE], so SDKs raise.
            return b""
        # A stream that ended without messageStop still gets its finish (and usage) chunk.
        chunks = self._translator.flush()
        if self._collected is not None:
            self._collect(chunks)
        return b"".join([encode_chunk(chunk) for chunk in chunks]) + DONE

    def fail(self, error: BedrockError) -> bytes:
        # No [DONE] follows the error, so SDKs raise instead of returning a truncated answer.
        return encode_error(to_upstream_error(error.name, error.message).to_openai())

    def settle(self, ctx: RequestContext) -> bool:
        translator = self._translator
        ctx.service_tier = translator.service_tier
        error = translator.error
        if error is not None and ctx.error_type is None:
            ctx.error_type = error.code  # a malformed answer ended the stream
        seen = translator.usage
        if seen is None:
            return False
        ctx.usage.take_converse(seen)
        return True

    def estimated_output_tokens(self) -> int:
        return self._translator.estimated_output_tokens()

    def completion(self) -> Any:
        return "".join(self._collected) if self._collected is not None else None

    def _collect(self, chunks: list[dict[str, Any]]) -> None:
        assert self._collected is not None
        for chunk in chunks:
            for choice in chunk.get("choices", ()):
                content = choice["delta"].get("content")
                if content:
                    self._collected.append(content)
