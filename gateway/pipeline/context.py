"""`RequestContext`: everything one billable request learns on its way through the pipeline.

Each stage writes its own part, in order, and nothing else reads the request's state from
anywhere but here:

* arrival -- `request_id`, `route`, `arrived`, `started`, the `runtime` snapshot (a SIGHUP
  reload never changes the rules under a request in flight);
* authenticate -- `principal`;
* parse -- `stream`, `end_user`, and with `logging.log_prompts` the `prompt`;
* resolve -- `model` (then the model that actually served, after fallbacks);
* admit -- `admission` (what `Limiter.charge` needs afterwards);
* call -- `guardrail_id` (the guardrail of the model called, if any: `guardrail_for`),
  `region` (the region that served);
* translate back -- `usage`, `estimated`, `ttft_ms`, `stream_error`, `service_tier`,
  `guardrail_intervened`, `completion`;
* finish -- `status`, `latency_ms`, `error_type`; then `to_record()` builds the ledger's
  `UsageRecord` from all of the above, once.

A plain dataclass with slots: the hot path touches it a dozen times per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.translate.shared.converse_usage import cache_write_1h_tokens
from gateway.usage.record import UsageRecord

if TYPE_CHECKING:
    from gateway.bedrock.catalog import ResolvedModel
    from gateway.keys.index import Principal
    from gateway.limits import Admission
    from gateway.pipeline.runtime import Runtime
    from gateway.translate.shared.guardrails import Guardrail

__all__ = ["RequestContext", "TokenUsage"]


@dataclass(slots=True)
class TokenUsage:
    """Token counts as Bedrock reported them (or as we estimated, see `estimated`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the 1-hour share of cache_write_tokens

    def take_converse(self, usage: Mapping[str, Any]) -> None:
        """A Converse `usage` object, or a ConverseStream metadata event's."""
        self.input_tokens = int(usage.get("inputTokens") or 0)
        self.output_tokens = int(usage.get("outputTokens") or 0)
        self.cache_read_tokens = int(usage.get("cacheReadInputTokens") or 0)
        self.cache_write_tokens = int(usage.get("cacheWriteInputTokens") or 0)
        self.cache_write_1h_tokens = cache_write_1h_tokens(usage)

    @property
    def total(self) -> int:
        """What a tpm limit counts: every input token (cached or not) and the output."""
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.output_tokens
        )


@dataclass(slots=True)
class RequestContext:
    id: str  # the usage record's id
    request_id: str
    route: str
    arrived: datetime  # UTC
    started: float  # perf_counter at arrival
    runtime: Runtime
    billable: bool = True
    # The request's headers as the ASGI scope has them, for surfaces whose API puts
    # request options in headers (Anthropic's `anthropic-beta`).
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    principal: Principal | None = None
    stream: bool = False
    end_user: str | None = None
    model: ResolvedModel | None = None
    admission: Admission | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    estimated: bool = False
    ttft_ms: float | None = None
    service_tier: str | None = None
    region: str | None = None  # the AWS region that served the request
    guardrail_id: str | None = None  # the Bedrock guardrail the request was sent with
    guardrail_intervened: bool = False  # Bedrock said that guardrail intervened
    stream_error: str | None = None  # a Bedrock failure after the first byte, for metrics
    status: int = 0
    latency_ms: float = 0.0
    error_type: str | None = None
    # Only with `logging.log_prompts`: what the access line shows of the conversation.
    prompt: Any = None
    completion: Any = None

    def to_record(self) -> UsageRecord:
        principal = self.principal
        model = self.model
        usage = self.usage
        return UsageRecord(
            id=self.id,
            ts=self.arrived,
            request_id=self.request_id,
            route=self.route,
            key_id=principal.key_id if principal else None,
            team=principal.team if principal else None,
            user=principal.user if principal else None,
            end_user=self.end_user,
            model=model.public_name if model else None,
            bedrock_model_id=model.bedrock_id if model else None,
            stream=self.stream,
            status=self.status,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            latency_ms=self.latency_ms,
            ttft_ms=self.ttft_ms,
            estimated=self.estimated,
            error_type=self.error_type,
            service_tier=self.service_tier,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            region=self.region,
            guardrail_id=self.guardrail_id,
        )

    def guardrail_for(self, model: ResolvedModel) -> Guardrail | None:
        """The guardrail a call to `model` is sent with (`gateway.pipeline.guardrails`)."""
        policy = self.runtime.guardrails
        if policy is None or self.principal is None:
            return None
        return policy.for_request(self.principal, model)

    @property
    def model_label(self) -> str:
        """The bounded `model` label of the metrics: config names only."""
        return self.model.metric_label if self.model is not None else "unknown"
