"""`POST /v1/responses`: the OpenAI Responses API surface over Converse / ConverseStream.

What this surface adds to the pipeline (`gateway.pipeline.handler`): the request model
(`gateway.schemas.openai_responses`), the Responses <-> Converse pair
(`gateway.translate.openai_responses`), the event encoder for streams, the OpenAI error
shape, and stored responses (`gateway.surfaces.openai_responses_stored`).

Order, as for chat: `prepare` checks and translates the request before admission (a
request Bedrock could never take is a 400 that costs nothing), with stand-in bytes for
remote images, which `respond` fetches after admission. One difference: a request that
continues a stored conversation (`previous_response_id`) is checked alone in `prepare`
and translated with its history in `respond`, since reading the history is I/O and
`prepare` is pure. So an unknown `previous_response_id` is a 404 after admission (it
costs one request of the key's rpm); a pipeline hook for asynchronous loading before
admission would move it earlier.

The stream is chosen by the body's `stream` flag alone: the Agents SDK streams with
`Accept: application/json`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.ids import new_id
from gateway.pipeline.context import RequestContext
from gateway.pipeline.surface import Parsed
from gateway.pipeline.upstream import Upstream
from gateway.responses.store import StoredResponse
from gateway.schemas.openai_responses import InputItem, ResponsesRequest
from gateway.server.bodies import json_response, validate
from gateway.server.sse import error_body
from gateway.surfaces.converse_calls import (
    STAND_IN_IMAGE,
    check_image_count,
    estimate_converse_input,
    is_message_start,
    model_options,
    response_headers,
    settle_answer,
)
from gateway.surfaces.openai_responses_stored import StoredResponses
from gateway.surfaces.openai_responses_stream import ResponsesStreamEncoder, output_text
from gateway.translate.openai_responses.request import (
    Prepared,
    ResponsesCall,
    converse_call,
    prepare,
)
from gateway.translate.openai_responses.response import (
    ResponseEcho,
    converse_to_response,
    request_echo,
)
from gateway.translate.openai_responses.stream import ResponsesStream
from gateway.translate.shared.guardrails import converse_guardrail_config

__all__ = ["Responses"]

# A stored conversation, read back as input items (it was written from validated ones).
_HISTORY: TypeAdapter[list[InputItem]] = TypeAdapter(list[InputItem])
_ITEM_ID_PREFIXES = {"message": "msg", "function_call": "fc", "reasoning": "rs"}


class _Prepared:
    __slots__ = ("body", "calls", "echo", "input_items", "prepared", "remote", "req", "store")

    def __init__(self, req: ResponsesRequest, body: dict[str, Any], prepared: Prepared) -> None:
        self.req = req
        self.body = body
        self.prepared = prepared
        self.remote = dict(prepared.remote_image_urls())
        self.calls: dict[str, ResponsesCall] = {}
        self.store = False
        self.echo: ResponseEcho | None = None
        self.input_items: list[dict[str, Any]] = []


class Responses:
    route = "/v1/responses"
    model_kind = "chat"
    billable = True

    def __init__(self) -> None:
        self.stored = StoredResponses()

    def error_body(self, error: GatewayError) -> bytes:
        return error_body(error)

    def error_status(self, error: GatewayError) -> int:
        return error.status

    def parse(self, body: dict[str, Any], ctx: RequestContext) -> Parsed:
        req = validate(ResponsesRequest, body)
        if req.input is None and req.previous_response_id is None:
            raise InvalidRequestError("'input' is required.", param="input")
        return Parsed(
            (req, body),
            model=req.model,
            stream=bool(req.stream),
            end_user=req.user or req.safety_identifier,
            end_user_param="user" if req.user else "safety_identifier",
            prompt=body.get("input"),
        )

    def prepare(self, parsed: Parsed, model: ResolvedModel, ctx: RequestContext) -> _Prepared:
        req, body = parsed.request
        checked = self._reshape(req, model, ctx, history=())
        result = _Prepared(req, body, checked)
        if req.previous_response_id is None:
            stand_ins = dict.fromkeys(result.remote, STAND_IN_IMAGE)
            first = self._translate(checked, model, ctx, stand_ins, stream=bool(req.stream))
            check_image_count(first.converse.request, param="input")
            if not result.remote:
                result.calls[model.bedrock_id] = first
        config = ctx.runtime.config.responses
        result.store = req.store if req.store is not None else config.store
        result.echo = request_echo(req, store=result.store)
        if result.store:  # (what is stored; made only for a response that will be)
            result.input_items = _input_items(body)
        return result

    async def respond(
        self, prepared: _Prepared, upstream: Upstream, ctx: RequestContext
    ) -> ASGIApp:
        req = prepared.req
        assert ctx.model is not None and ctx.principal is not None and prepared.echo is not None
        previous: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            stored = await self.stored.load(req.previous_response_id, ctx.principal.key_id)
            if stored is None:
                raise NotFoundError(
                    f"No stored response '{req.previous_response_id}' for this API key (never "
                    "stored, expired, deleted, or made with another key).",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            previous = stored.context
            prepared.prepared = self._reshape(
                req, ctx.model, ctx, history=_HISTORY.validate_python(previous)
            )
            prepared.remote = dict(prepared.prepared.remote_image_urls())
        images = await upstream.fetch_images(prepared.remote)
        checked = prepared.prepared

        def translated(candidate: ResolvedModel) -> ResponsesCall:
            call = prepared.calls.get(candidate.bedrock_id)
            if call is None:
                call = prepared.calls[candidate.bedrock_id] = self._translate(
                    checked, candidate, ctx, images, stream=bool(req.stream)
                )
            return call

        first = translated(ctx.model)
        if previous:
            check_image_count(first.converse.request, param="input")

        def estimate_input() -> int:
            return estimate_converse_input(first.converse.request)

        response_id = f"resp_{new_id()}"
        created = int(time.time())
        keep = _Keeper(self.stored, ctx, prepared, response_id, previous)
        key = self.stored.key
        if req.stream:
            used, opened = await upstream.open_stream(
                lambda client, m: client.converse_stream(
                    m.bedrock_id, translated(m).converse.request, region=m.region
                ),
                is_preamble=is_message_start,
            )
            call = translated(used)
            stream = ResponsesStream(
                prepared.echo,
                response_id=response_id,
                model=req.model,
                created_at=created,
                tool_names=call.tool_names,
                namespaced=call.namespaced,
                custom=call.custom,
                structured_output_tool=call.converse.structured_output_tool,
                reasoning_key=key,
                expose_reasoning=call.include_reasoning,
            )
            encoder = ResponsesStreamEncoder(stream, keep)
            return upstream.stream_response(
                opened, encoder, headers=_headers(used, call), estimate_input=estimate_input
            )

        used, result = await upstream.call(
            lambda client, m: client.converse(
                m.bedrock_id, translated(m).converse.request, region=m.region
            ),
            estimate_input=estimate_input,
        )
        call = translated(used)
        settle_answer(ctx, result, estimate_input=estimate_input)
        encrypted: dict[str, str] = {}
        data = converse_to_response(
            result,
            prepared.echo,
            response_id=response_id,
            model=req.model,
            created_at=created,
            tool_names=call.tool_names,
            namespaced=call.namespaced,
            custom=call.custom,
            structured_output_tool=call.converse.structured_output_tool,
            reasoning_key=key,
            expose_reasoning=call.include_reasoning,
            encrypted=encrypted,
        )
        keep(data, encrypted)
        if ctx.runtime.config.logging.log_prompts:
            ctx.completion = output_text(data)
        return json_response(data, headers=_headers(used, call))

    def _reshape(
        self,
        req: ResponsesRequest,
        model: ResolvedModel,
        ctx: RequestContext,
        *,
        history: Any,
    ) -> Prepared:
        return prepare(
            req,
            reasoning_key=self.stored.key,
            reasoning_supported=bool(model.config and model.config.reasoning.supported),
            drop_unsupported=ctx.runtime.config.drop_unsupported_params,
            history=history,
        )

    @staticmethod
    def _translate(
        checked: Prepared,
        model: ResolvedModel,
        ctx: RequestContext,
        images: Mapping[str, tuple[str, bytes]],
        *,
        stream: bool,
    ) -> ResponsesCall:
        runtime = ctx.runtime
        guardrail = ctx.guardrail_for(model)
        return converse_call(
            checked,
            model_id=model.bedrock_id,
            drop_unsupported=runtime.config.drop_unsupported_params,
            options=model_options(runtime.config.images.max_bytes, model),
            images=images,
            guardrail=converse_guardrail_config(guardrail, stream=stream)
            if guardrail is not None
            else None,
        )


class _Keeper:
    """Stores a finished response (when the request asked for it), with the conversation
    so far, reasoning encrypted whether or not the client saw it."""

    __slots__ = ("_ctx", "_prepared", "_previous", "_response_id", "_stored")

    def __init__(
        self,
        stored: StoredResponses,
        ctx: RequestContext,
        prepared: _Prepared,
        response_id: str,
        previous: list[dict[str, Any]],
    ) -> None:
        self._stored = stored
        self._ctx = ctx
        self._prepared = prepared
        self._response_id = response_id
        self._previous = previous

    def __call__(self, response: dict[str, Any], encrypted: Mapping[str, str]) -> None:
        prepared = self._prepared
        principal = self._ctx.principal
        if not prepared.store or principal is None:
            return
        output = [
            {**item, "encrypted_content": encrypted[item["id"]]}
            if item["id"] in encrypted
            else item
            for item in response["output"]
        ]
        now = datetime.now(UTC)
        days = self._ctx.runtime.config.responses.retention_days
        self._stored.save(
            StoredResponse(
                id=self._response_id,
                key_id=principal.key_id,
                created_at=now,
                expires_at=now + timedelta(days=days),
                response=response,
                input_items=prepared.input_items,
                context=[*self._previous, *prepared.input_items, *output],
            )
        )


def _headers(model: ResolvedModel, call: ResponsesCall) -> dict[str, str]:
    headers = response_headers(model, call.dropped)
    if call.dropped_tools:
        headers["x-gateway-dropped-tools"] = ",".join(call.dropped_tools)
    return headers


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """This request's input as stored items, as OpenAI lists them: each with an id, a
    message's string content as one text part."""
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    items: list[dict[str, Any]] = []
    for original in raw or ():
        item = dict(original)
        kind = item.setdefault("type", "message")
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        if "id" not in item:
            item["id"] = f"{_ITEM_ID_PREFIXES.get(kind, 'item')}_{new_id()}"
        items.append(item)
    return items
