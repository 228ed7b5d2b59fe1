"""The usage record: one per request, success or failure, with the fields of CONTRACT.md.

The pipeline builds it once, when a request is over, from the request's typed context
(`gateway.pipeline.context.RequestContext.to_record`), prices it and hands it to the
recorder. It is a plain dataclass with slots: a pydantic model would cost more than the
rest of the bookkeeping.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["RECORD_FIELDS", "UsageRecord"]


@dataclass(slots=True)
class UsageRecord:
    id: str
    ts: datetime  # UTC, when the request arrived
    request_id: str
    route: str
    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    end_user: str | None = None  # the request's own "user" field
    model: str | None = None  # the public name the client asked for
    bedrock_model_id: str | None = None  # what was actually called, after fallbacks
    stream: bool = False
    status: int = 0  # the HTTP status sent to the client
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal | None = None  # None when the model has no known price
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    estimated: bool = False  # True when Bedrock's own usage could not be read
    error_type: str | None = None
    service_tier: str | None = None  # the tier Bedrock served on: default, flex, priority
    cache_write_1h_tokens: int = 0  # the 1-hour share of cache_write_tokens
    region: str | None = None  # the AWS region that served the request
    guardrail_id: str | None = None  # the Bedrock guardrail applied (its id or ARN)

    def to_row(self) -> dict[str, Any]:
        """The stored columns, in contract order.

        Plain attribute reads, not `dataclasses.asdict`: that deep-copies every value and
        costs ten times as much on the path of every request.
        """
        return dict(zip(RECORD_FIELDS, _fields_of(self), strict=True))

    def values(self) -> list[Any]:
        """The stored columns' values, in contract order (`RECORD_FIELDS`)."""
        return list(_fields_of(self))


RECORD_FIELDS: tuple[str, ...] = (
    "id",
    "ts",
    "request_id",
    "key_id",
    "team",
    "user",
    "end_user",
    "model",
    "bedrock_model_id",
    "route",
    "stream",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "estimated",
    "error_type",
    "service_tier",
    "cache_write_1h_tokens",
    "region",
    "guardrail_id",
)

# One C call for every field, in `RECORD_FIELDS` order.
_fields_of = operator.attrgetter(*RECORD_FIELDS)
