"""`GET /v1/usage`: the ledger, aggregated. Admin keys see everyone; other keys themselves.

The usage store answers the query, not the in-memory queue: records still waiting to be
flushed (at most `usage.flush_interval_ms` old) are not in the answer yet.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidRequestError
from gateway.pipeline.runtime import Gateway
from gateway.usage.report import (
    CONTENT_TYPES,
    UsageReport,
    parse_format,
    parse_group_by,
    parse_range,
    render,
)

__all__ = ["usage_report"]


async def usage_report(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    principal = request.state.principal
    query = request.query_params
    try:
        group_by = parse_group_by(query.get("group_by"))
        start, end = parse_range(query.get("start"), query.get("end"))
        fmt = parse_format(query.get("format"))
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param=_param_of(str(exc))) from None
    if fmt == "table":
        raise InvalidRequestError("format must be json or csv", param="format")
    rows = await gateway.recorder.store.query(
        group_by=group_by,
        start=start,
        end=end,
        key_id=None if principal.is_admin else principal.key_id,
    )
    body = render(UsageReport(group_by=group_by, start=start, end=end, rows=rows), fmt)
    return Response(body, media_type=CONTENT_TYPES[fmt])


def _param_of(message: str) -> str | None:
    # The report parsers start every message with the parameter's name.
    name = message.split(":", 1)[0]
    return name if name in ("group_by", "start", "end", "format") else None
