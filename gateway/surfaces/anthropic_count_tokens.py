"""`POST /v1/messages/count_tokens`: Claude Code asks before its turns.

Not billable (`billable = False`): authenticated and allowed per model like any model
call, counted in the metrics, but not charged to limits and not a ledger row. Claude
Code falls back to a billed `max_tokens: 1` call when counting fails, so it must not
fail for want of a counter: a model Bedrock cannot count gets an estimate, marked
`x-gateway-token-count: estimated`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockClient
from gateway.errors import GatewayError, UpstreamError
from gateway.pipeline.context import RequestContext
from gateway.pipeline.surface import Parsed
from gateway.pipeline.upstream import Upstream
from gateway.schemas.anthropic import CountTokensRequest
from gateway.server.bodies import json_response, validate
from gateway.surfaces.anthropic_messages import request_betas
from gateway.translate.anthropic_messages.count_tokens import (
    ESTIMATE_HEADER,
    count_tokens_input,
    estimate_input_tokens,
)
from gateway.translate.anthropic_messages.errors import anthropic_error_body, anthropic_status
from gateway.translate.anthropic_messages.invoke import InvokeCall, is_claude

__all__ = ["CountTokens"]


@dataclass(slots=True)
class _Prepared:
    body: dict[str, Any]
    source: dict[str, Any] | None  # the CountTokens input; None: estimate
    call: InvokeCall | None


class CountTokens:
    route = "/v1/messages/count_tokens"
    model_kind = "chat"
    billable = False

    def error_body(self, error: GatewayError) -> bytes:
        return anthropic_error_body(error)

    def error_status(self, error: GatewayError) -> int:
        return anthropic_status(error)

    def parse(self, body: dict[str, Any], ctx: RequestContext) -> Parsed:
        request = validate(CountTokensRequest, body)
        return Parsed(body, model=request.model, prompt=body.get("messages"))

    def prepare(self, parsed: Parsed, model: ResolvedModel, ctx: RequestContext) -> _Prepared:
        body: dict[str, Any] = parsed.request
        if not is_claude(model.bedrock_id):
            return _Prepared(body, None, None)
        source, call = count_tokens_input(
            body, header_betas=request_betas(ctx), allowed_betas=ctx.runtime.config.anthropic.betas
        )
        return _Prepared(body, source, call)

    async def respond(
        self, prepared: _Prepared, upstream: Upstream, ctx: RequestContext
    ) -> ASGIApp:
        assert ctx.model is not None
        headers = {"x-gateway-model": ctx.model.bedrock_id}
        if prepared.call is not None and prepared.call.dropped_betas:
            headers["x-gateway-dropped-betas"] = ",".join(prepared.call.dropped_betas)
        source = prepared.source
        if source is None:
            return _estimate(prepared, headers)

        async def attempt(client: BedrockClient, model: ResolvedModel) -> int:
            return await client.count_tokens(model.bedrock_id, source, region=model.region)

        try:
            used, tokens = await upstream.call(attempt, estimate_input=lambda: 0)
        except UpstreamError as exc:
            # CountTokens serves only some Claude versions; Bedrock says so with a 400
            # ValidationException "The provided model doesn't support counting tokens."
            if (
                exc.bedrock_error != "ValidationException"
                or "counting tokens" not in exc.message.lower()
            ):
                raise
            ctx.error_type = None
            return _estimate(prepared, headers)
        headers["x-gateway-model"] = used.bedrock_id
        return json_response({"input_tokens": tokens}, headers=headers)


def _estimate(prepared: _Prepared, headers: dict[str, str]) -> ASGIApp:
    headers[ESTIMATE_HEADER] = "estimated"
    return json_response({"input_tokens": estimate_input_tokens(prepared.body)}, headers=headers)
