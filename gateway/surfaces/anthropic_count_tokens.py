"""`POST /v1/messages/count_tokens`: Claude Code asks before each turn; not billed, but
authenticated and allowed per model like any model call, and counted in metrics.

Claude Code falls back to a billed `max_tokens: 1` call when this fails, so it must not:
a model Bedrock cannot count gets an estimate, marked `x-gateway-token-count: estimated`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.bedrock.client import BedrockError
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.schemas.anthropic import CountTokensRequest
from gateway.server.bodies import json_response, read_json, validate
from gateway.surfaces.anthropic_common import record_model, request_betas
from gateway.surfaces.openai_chat import resolve_for_caller, upstream_failure
from gateway.translate.anthropic_messages.count_tokens import (
    ESTIMATE_HEADER,
    count_tokens_input,
    estimate_input_tokens,
)
from gateway.translate.anthropic_messages.invoke import is_claude
from gateway.usage.record import UsageRecord

__all__ = ["count_tokens"]


async def count_tokens(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    gateway: Gateway = request.app.state.gateway
    record: UsageRecord = request.state.usage
    body = await read_json(request, runtime.config.server.max_body_bytes)
    parsed = validate(CountTokensRequest, body)
    model = resolve_for_caller(request, parsed.model, kind="chat")
    record_model(record, model)
    if not is_claude(model.bedrock_id):
        return json_response(
            {"input_tokens": estimate_input_tokens(body)},
            headers={ESTIMATE_HEADER: "estimated", "x-gateway-model": model.bedrock_id},
        )
    source, call = count_tokens_input(
        body, header_betas=request_betas(request), allowed_betas=runtime.config.anthropic.betas
    )
    headers = {"x-gateway-model": model.bedrock_id}
    try:
        tokens = await gateway.bedrock.count_tokens(model.bedrock_id, source, region=model.region)
    except BedrockError as exc:
        if not _cannot_count(exc):
            raise upstream_failure(record, exc) from exc
        # CountTokens serves only some Claude versions; Bedrock says so with a 400
        # ValidationException "The provided model doesn't support counting tokens."
        tokens = estimate_input_tokens(body)
        headers[ESTIMATE_HEADER] = "estimated"
    if call.dropped_betas:
        headers["x-gateway-dropped-betas"] = ",".join(call.dropped_betas)
    return json_response({"input_tokens": tokens}, headers=headers)


def _cannot_count(exc: BedrockError) -> bool:
    return exc.name == "ValidationException" and "counting tokens" in exc.message.lower()
