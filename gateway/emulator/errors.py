"""The errors the emulator answers with, spelled the way Bedrock spells them on the wire.

Bedrock Runtime speaks rest-json: an error is an HTTP status, an `x-amzn-ErrorType` header
whose text before the first `:` is the exception name, and a body that is only
`{"message": ...}`. botocore reads the code from that header (the body has no `__type`),
so the header is what makes a client raise `ClientError` with the right `Error.Code`.

In-stream errors are different: an event-stream frame with `:message-type` exception and
`:exception-type` naming one of the members of `ConverseStreamOutput`, camel-cased.
"""

from __future__ import annotations

import json

__all__ = [
    "BEDROCK_ERRORS",
    "STREAM_EXCEPTIONS",
    "ServiceError",
    "error_body",
    "error_type_header",
]

_CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

# name -> (HTTP status, default message). Statuses are those of the botocore service model;
# the messages imitate the service's wording.
BEDROCK_ERRORS: dict[str, tuple[int, str]] = {
    "ValidationException": (400, "The request failed validation."),
    "AccessDeniedException": (
        403,
        "You don't have access to the model with the specified model ID.",
    ),
    "ResourceNotFoundException": (404, "The specified resource could not be found."),
    "ThrottlingException": (429, "Too many requests, please wait before trying again."),
    "ServiceQuotaExceededException": (
        400,
        "Your request exceeds the service quota for your account. Try again later.",
    ),
    "ModelTimeoutException": (
        408,
        "Model has timed out in processing the request. Try your request again.",
    ),
    "ModelNotReadyException": (
        429,
        "The model is not ready to serve inference requests. Try again later.",
    ),
    "ModelErrorException": (424, "The model returned an error while processing the request."),
    "InternalServerException": (
        500,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    "ServiceUnavailableException": (503, "Bedrock is unable to process your request."),
}

# Errors of the AWS front door rather than of Bedrock: their header carries no coral suffix.
_FRONT_DOOR_ERRORS: dict[str, tuple[int, str]] = {
    "MissingAuthenticationTokenException": (403, "Missing Authentication Token"),
    "UnknownOperationException": (404, "The requested operation is not recognized."),
}

# camelCase exception member of ConverseStreamOutput -> default message.
STREAM_EXCEPTIONS: dict[str, str] = {
    "internalServerException": BEDROCK_ERRORS["InternalServerException"][1],
    "modelStreamErrorException": "The model stream was interrupted by an error.",
    "validationException": BEDROCK_ERRORS["ValidationException"][1],
    "throttlingException": BEDROCK_ERRORS["ThrottlingException"][1],
    "serviceUnavailableException": BEDROCK_ERRORS["ServiceUnavailableException"][1],
}


class ServiceError(Exception):
    """An error answered as Bedrock would, before any byte of a successful answer is sent."""

    def __init__(self, name: str, message: str | None = None) -> None:
        known = BEDROCK_ERRORS.get(name) or _FRONT_DOOR_ERRORS.get(name)
        if known is None:
            raise ValueError(f"unknown Bedrock error name {name!r}")
        self.name = name
        self.status = known[0]
        self.message = message if message is not None else known[1]
        super().__init__(f"{name}: {self.message}")


def error_type_header(name: str) -> bytes:
    """The `x-amzn-ErrorType` value for an error name."""
    if name in BEDROCK_ERRORS:
        return (name + _CORAL).encode("ascii")
    return name.encode("ascii")


def error_body(message: str, **extra: object) -> bytes:
    """The JSON body of an HTTP error or an exception frame: `message` plus optional fields."""
    return json.dumps({"message": message, **extra}, ensure_ascii=False).encode("utf-8")
