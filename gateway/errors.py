"""Every error the gateway answers with, and its OpenAI wire shape.

OpenAI clients branch on the HTTP status and on `error.type` / `error.code`, so each
failure is one class with both fixed here, not chosen ad hoc in handlers:

* GatewayError -- base; `status`, `type`, `code`, `param`, extra `headers`.
  * InvalidRequestError -- 400 `invalid_request_error`: malformed JSON, wrong types,
    parameters Bedrock cannot honour. `param` names the offending field.
    * UnsupportedParameterError -- 400, code `unsupported_parameter`.
  * AuthenticationError -- 401 `authentication_error`: missing or wrong API key.
  * PermissionDeniedError -- 403 `permission_error`: key not allowed this model.
  * NotFoundError -- 404 `not_found_error`; `model_not_found` for unknown models.
  * MethodNotAllowedError -- 405 `invalid_request_error`, with `allow`.
  * RequestTimeoutError -- 408 `invalid_request_error`: the body came too slowly.
  * PayloadTooLargeError -- 413 `invalid_request_error`, code `request_too_large`.
  * RateLimitError -- 429 `rate_limit_error`, always with `retry-after`.
  * UpstreamError -- whatever Bedrock (or the network to it) answered, mapped through
    `gateway.translate.shared.errors`; `bedrock_error` keeps the exception name for metrics.
  * OverloadedError -- 503 `server_error`: the gateway itself is at capacity.
  * InternalError -- 500 `server_error`: a bug; the message never carries Python text.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "GatewayError",
    "InternalError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "UnsupportedParameterError",
    "UpstreamError",
]


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def to_openai(self) -> dict[str, Any]:
        """The body OpenAI sends for an error: `{"error": {message, type, param, code}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameterError(InvalidRequestError):
    code = "unsupported_parameter"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class MethodNotAllowedError(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message, headers={"allow": allow})


class RequestTimeoutError(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"retry-after": _seconds(retry_after_s)})
        self.retry_after_s = retry_after_s


class UpstreamError(GatewayError):
    """Bedrock refused or failed; status, type and code come from the translate table."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        code: str | None,
        bedrock_error: str,
        retry_after_s: float | None = None,
    ) -> None:
        headers = {"retry-after": _seconds(retry_after_s)} if retry_after_s is not None else None
        super().__init__(message, code=code, headers=headers)
        self.status = status
        self.type = type
        self.bedrock_error = bedrock_error
        self.retry_after_s = retry_after_s


class OverloadedError(GatewayError):
    status = 503
    type = "server_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float = 1) -> None:
        super().__init__(message, headers={"retry-after": _seconds(retry_after_s)})


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    code = "internal_error"


def _seconds(value: float) -> str:
    # retry-after is whole seconds (RFC 9110); round up so a client never retries too early.
    whole = int(value)
    return str(whole if whole == value else whole + 1)
