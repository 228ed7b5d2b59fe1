"""Bedrock failures as OpenAI errors: one table, one function.

OpenAI clients decide what to do from the HTTP status (the official SDKs retry 408, 409,
429 and 5xx, honouring `retry-after`) and show `error.message` to a person. So each row
fixes the status a client will act on, an OpenAI error `type`, a stable `code` naming what
went wrong upstream, whether our own fallback logic may try another model, and a message
that says whose problem it is.

The names are the Pascal-case exception names of botocore's bedrock-runtime model (the
Bedrock client normalises the camel-case names of event-stream exception frames, e.g.
`throttlingException`), plus the transport names `gateway.bedrock.client` gives network failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import UpstreamError

__all__ = [
    "BEDROCK_ERRORS",
    "DEFAULT_RETRY_AFTER_S",
    "UNKNOWN_ERROR",
    "ErrorMapping",
    "access_denied_detail",
    "to_upstream_error",
]

_UPSTREAM = "Bedrock {name}: {detail}"
# No Bedrock text here: AccessDeniedException's message names the AWS account and role
# ARN (issue 19, item 13). `gateway.bedrock.client` logs it and passes on only
# `access_denied_detail(model_id)`; `{detail}` is then that, or "this model".
_GATEWAY_ACCESS = (
    "The gateway's AWS credentials are not allowed to call {detail} "
    "(Bedrock {name}). Ask the gateway operator to enable access to it in Bedrock."
)
_ACCESS_DETAIL = re.compile(r"model '[^'\n]{1,2048}'")
_THROTTLED = "Bedrock is limiting requests to this model (Bedrock {name}: {detail})."
_TIMEOUT = "Bedrock did not answer in time (Bedrock {name}: {detail})."
_UNREACHABLE = "The gateway could not reach Bedrock ({name}: {detail})."


@dataclass(frozen=True, slots=True)
class ErrorMapping:
    """How one Bedrock failure reaches an OpenAI client.

    `retryable` means the same request may succeed on another attempt or another model
    before any byte was sent, so fallbacks are worth trying. `message` is a template with
    `{name}` (the exception name) and `{detail}` (Bedrock's own message).
    """

    status: int
    type: str
    code: str | None
    retryable: bool = False
    message: str = _UPSTREAM


# OpenAI uses `server_error` for every failure on its side, whatever the 5xx status.
BEDROCK_ERRORS: dict[str, ErrorMapping] = {
    # The request itself is wrong (bad parameter, prompt too long, unknown model id): the
    # caller can fix it, so Bedrock's message goes through as it is.
    "ValidationException": ErrorMapping(400, "invalid_request_error", "invalid_request"),
    # Bedrock judges the gateway's AWS identity, not the API key the caller sent: saying
    # "permission denied" alone would send the caller to check a key that is fine.
    "AccessDeniedException": ErrorMapping(
        403, "permission_error", "model_access_denied", message=_GATEWAY_ACCESS
    ),
    "ResourceNotFoundException": ErrorMapping(404, "not_found_error", "model_not_found"),
    "ThrottlingException": ErrorMapping(
        429, "rate_limit_error", "rate_limit_exceeded", retryable=True, message=_THROTTLED
    ),
    # Bedrock's per-minute token and request quotas: a rate limit as far as the caller is
    # concerned, and it clears by itself (OpenAI's `insufficient_quota` would say "billing").
    "ServiceQuotaExceededException": ErrorMapping(
        429, "rate_limit_error", "rate_limit_exceeded", retryable=True, message=_THROTTLED
    ),
    "ModelTimeoutException": ErrorMapping(504, "server_error", "model_timeout", message=_TIMEOUT),
    "ModelNotReadyException": ErrorMapping(503, "server_error", "model_not_ready", retryable=True),
    "ServiceUnavailableException": ErrorMapping(
        503, "server_error", "service_unavailable", retryable=True
    ),
    # The model or Bedrock failed while answering: we are a gateway, so 502, not 500 (500
    # is kept for our own bugs, see `gateway.errors.InternalError`).
    "ModelErrorException": ErrorMapping(502, "server_error", "model_error"),
    "InternalServerException": ErrorMapping(502, "server_error", "upstream_server_error"),
    "ModelStreamErrorException": ErrorMapping(502, "server_error", "model_stream_error"),
    # Transport failures. A refused or timed-out connection never reached Bedrock, so
    # another attempt cannot run (or bill) the request twice; a read timeout may have.
    "ConnectionError": ErrorMapping(
        502, "server_error", "upstream_unreachable", retryable=True, message=_UNREACHABLE
    ),
    "ConnectTimeout": ErrorMapping(
        504, "server_error", "upstream_connect_timeout", retryable=True, message=_UNREACHABLE
    ),
    "ReadTimeout": ErrorMapping(504, "server_error", "upstream_read_timeout", message=_TIMEOUT),
    # Our own: the model sent no first token within its `ttft_timeout_s` (fallbacks are
    # tried first; this is what the client sees when none answered in time either).
    "FirstTokenTimeout": ErrorMapping(504, "server_error", "first_token_timeout", message=_TIMEOUT),
}

# Anything else Bedrock may invent: a failure we cannot judge, reported as upstream with its
# name kept (in the message and in `UpstreamError.bedrock_error`, for metrics).
UNKNOWN_ERROR = ErrorMapping(502, "server_error", "upstream_error")

# Bedrock's throttling answers carry no `retry-after`; one second is long enough for its
# token buckets to refill a little and short enough not to stall an interactive client.
DEFAULT_RETRY_AFTER_S = 1.0


def access_denied_detail(model_id: str | None) -> str:
    """What an AccessDeniedException may tell the caller: the model, nothing of AWS's text."""
    return "this model" if not model_id else f"model '{model_id}'"


def to_upstream_error(
    name: str, message: str, *, retry_after_s: float | None = None
) -> UpstreamError:
    """The gateway error for a Bedrock failure called `name` with Bedrock's `message`."""
    name = name[:1].upper() + name[1:]
    mapping = BEDROCK_ERRORS.get(name, UNKNOWN_ERROR)
    if retry_after_s is None and mapping.status == 429:
        retry_after_s = DEFAULT_RETRY_AFTER_S
    detail = message.strip() or "no message"
    if mapping.message is _GATEWAY_ACCESS and not _ACCESS_DETAIL.fullmatch(detail):
        detail = "this model"  # not from `access_denied_detail`: may name the account
    return UpstreamError(
        mapping.message.format(name=name, detail=detail),
        status=mapping.status,
        type=mapping.type,
        code=mapping.code,
        bedrock_error=name,
        retry_after_s=retry_after_s,
    )
