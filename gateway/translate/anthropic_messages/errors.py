"""A `GatewayError` in the Anthropic error shape: one table from our status to Anthropic's.

Anthropic SDKs and Claude Code branch on the HTTP status (they retry 408, 409, 429 and
5xx, honouring `retry-after`) and on `error.type`; the message goes to a person. The
gateway decides each failure once, as a `GatewayError` with a status (`gateway.errors`,
`gateway.translate.shared.errors` for Bedrock's); this table only renames it the way
Anthropic's API does (https://docs.anthropic.com/en/api/errors).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import GatewayError

__all__ = ["ANTHROPIC_ERRORS", "anthropic_error", "anthropic_error_body", "anthropic_status"]

# our status -> (the status an Anthropic client sees, Anthropic's error type)
ANTHROPIC_ERRORS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    # A body over the size limit; our OpenAI shape calls it invalid_request_error.
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    # Bedrock failed while answering: Anthropic has no "bad gateway" type.
    502: (502, "api_error"),
    # The gateway at capacity, or Bedrock's ServiceUnavailable / ModelNotReady: Anthropic
    # says "overloaded" with its own 529, which its SDKs and Claude Code retry with backoff.
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}


def anthropic_status(error: GatewayError) -> int:
    return ANTHROPIC_ERRORS.get(error.status, (error.status, "api_error"))[0]


def anthropic_error(error: GatewayError) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}`, as Anthropic's API answers."""
    _, kind = ANTHROPIC_ERRORS.get(
        error.status, (error.status, "invalid_request_error" if error.status < 500 else "api_error")
    )
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def anthropic_error_body(error: GatewayError) -> bytes:
    return json.dumps(anthropic_error(error), separators=(",", ":")).encode()
