"""What both `/v1/messages` paths (Claude on Invoke, others on Converse) and count_tokens share."""

from __future__ import annotations

from starlette.requests import Request

from gateway.bedrock.catalog import ResolvedModel
from gateway.bedrock.client import BedrockError
from gateway.translate.anthropic_messages.betas import parse_beta_header
from gateway.translate.anthropic_messages.errors import anthropic_error
from gateway.translate.anthropic_messages.invoke import MessagesUsage
from gateway.translate.anthropic_messages.invoke_stream import sse_event
from gateway.translate.shared.errors import to_upstream_error
from gateway.usage.record import UsageRecord

__all__ = ["error_event", "record_model", "record_usage", "request_betas"]


def request_betas(request: Request) -> list[str]:
    """Every `anthropic-beta` header value, split and in order."""
    return parse_beta_header(
        value.decode("latin-1")
        for name, value in request.scope["headers"]
        if name == b"anthropic-beta"
    )


def record_usage(record: UsageRecord, usage: MessagesUsage) -> None:
    record.input_tokens = usage.input_tokens
    record.output_tokens = usage.output_tokens
    record.cache_read_tokens = usage.cache_read_tokens
    record.cache_write_tokens = usage.cache_write_tokens


def record_model(record: UsageRecord, model: ResolvedModel) -> None:
    record.model = model.public_name
    record.bedrock_model_id = model.bedrock_id
    record.extra["model_label"] = model.metric_label


def error_event(exc: BedrockError) -> bytes:
    """A failure after the first byte: Anthropic's `event: error`, and the stream ends."""
    return sse_event("error", anthropic_error(to_upstream_error(exc.name, exc.message)))
