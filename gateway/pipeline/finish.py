"""Finish: the last stage of every request that reached a surface, whatever its outcome.

In order: price the usage, write the ledger record, charge the real usage to the key's and
team's limits, count the metrics, write one access line. Each step only reads the
`RequestContext`, so every surface is accounted the same way.

What reaches the ledger: requests of a known key on a billable route, success or failure.
A request without a valid key belongs to nobody and bills nothing (a 401 is counted in
the metrics, not the ledger), nor does a non-billable route such as token counting.

Nothing here waits: the recorder buffers (`UsageRecorder.submit` never blocks or raises),
and charging a limit, which may wait on Redis, runs as its own task after the response.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.logs import ACCESS_LOGGER
from gateway.usage.record import UsageRecord

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext
    from gateway.pipeline.runtime import Gateway

__all__ = ["access_fields", "finish"]

access_logger = logging.getLogger(ACCESS_LOGGER)


def finish(gateway: Gateway, ctx: RequestContext) -> None:
    runtime = ctx.runtime
    record = ctx.to_record()
    usage = ctx.usage
    record.cost_usd = runtime.prices.cost(
        model=record.model,
        bedrock_model_id=record.bedrock_model_id,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        service_tier=ctx.service_tier,
    )
    if ctx.billable and ctx.principal is not None:
        gateway.recorder.submit(record)
    admission = ctx.admission
    if admission is not None and admission.charges:
        gateway.charge_later(admission, tokens=usage.total, cost_usd=record.cost_usd)
    label = ctx.model_label
    gateway.metrics.observe_request(record, model_label=label)
    if ctx.stream_error:
        gateway.metrics.upstream_errors.labels(label, ctx.stream_error).inc()
    if ctx.guardrail_intervened and ctx.guardrail_id is not None:
        gateway.metrics.guardrail_interventions.labels(
            label, record.team or "", ctx.guardrail_id
        ).inc()
    if access_logger.isEnabledFor(logging.INFO):
        fields = access_fields(record)
        if runtime.config.logging.log_prompts:
            fields["prompt"] = ctx.prompt
            fields["completion"] = ctx.completion
        access_logger.info("request", extra=fields)


def access_fields(record: UsageRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "route": record.route,
        "key_id": record.key_id,
        "team": record.team,
        "model": record.model,
        "bedrock_model_id": record.bedrock_model_id,
        "status": record.status,
        "stream": record.stream,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "estimated": record.estimated,
        "error_type": record.error_type,
        "guardrail_id": record.guardrail_id,
    }
