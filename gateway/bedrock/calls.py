"""The calls of a Bedrock client, and every failure normalised into one `BedrockError`.

Handlers depend on the `BedrockClient` protocol, never on aiobotocore, so fast tests can inject
a fake and the rest of the gateway never sees botocore exceptions: every failure arrives as
a `BedrockError` carrying the Bedrock exception name (`ThrottlingException`, ...) or one of
our own names for transport failures (`ConnectionError`, `ConnectTimeout`, `ReadTimeout`).
`_Calls` makes the five calls over whichever aiobotocore client `_client(region)` picks:
`gateway.bedrock.client` picks per region, or per region and team role.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from gateway.translate.shared.errors import access_denied_detail

__all__ = [
    "BedrockClient",
    "BedrockError",
    "BedrockStream",
    "InvokeResult",
    "StaticCredentials",
]

logger = logging.getLogger("gateway.bedrock")


class BedrockError(Exception):
    """A Bedrock call failed: `name` is the exception name, `status` the HTTP status if any."""

    def __init__(self, name: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.status = status


class BedrockStream(Protocol):
    """ConverseStream events as parsed dicts (`{"contentBlockDelta": {...}}`), then close."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class BedrockClient(Protocol):
    async def converse(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> dict[str, Any]: ...

    async def converse_stream(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> BedrockStream: ...

    async def invoke_model(
        self,
        model_id: str,
        body: bytes,
        *,
        region: str | None = None,
        guardrail: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        """InvokeModel; `guardrail` holds its guardrail parameters (`guardrailIdentifier`,
        `guardrailVersion`, `trace`), sent as Bedrock's request headers."""
        ...

    async def invoke_model_stream(
        self,
        model_id: str,
        body: bytes,
        *,
        region: str | None = None,
        guardrail: Mapping[str, str] | None = None,
    ) -> BedrockStream:
        """InvokeModelWithResponseStream: `{"chunk": {"bytes": b"..."}}` events."""
        ...

    async def count_tokens(
        self, model_id: str, input: Mapping[str, Any], *, region: str | None = None
    ) -> int:
        """CountTokens: `input` is `{"invokeModel": {"body": bytes}}` or `{"converse": ...}`."""
        ...


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """An InvokeModel answer: the body, and the input token count Bedrock puts in a header.

    Some models (Cohere Embed) report their token count only in the
    `X-Amzn-Bedrock-Input-Token-Count` response header, never in the body.
    """

    body: bytes
    input_token_count: str | None


class StaticCredentials(Protocol):
    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...


def _bedrock_error(exc: BaseException, model_id: str | None = None) -> BedrockError:
    """Normalise botocore / aiohttp failures into one exception type with a stable name."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "UnknownError")
        # In-stream exception frames arrive camel-cased (`throttlingException`); the HTTP
        # errors Pascal-cased. One spelling keeps the error table and metrics simple.
        name = code[:1].upper() + code[1:]
        message = str(error.get("Message") or error.get("message") or name)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if name == "AccessDeniedException":
            # Bedrock's text names the AWS account and the role ARN: for the operator's
            # log, never for the caller (issue 19, item 13), who learns only the model.
            logger.warning(
                "Bedrock refused the gateway's AWS identity for model %s: %s", model_id, message
            )
            message = access_denied_detail(model_id)
        return BedrockError(name, message, status=status if isinstance(status, int) else None)
    if isinstance(exc, ReadTimeoutError | asyncio.TimeoutError):
        return BedrockError("ReadTimeout", "Bedrock did not answer within the read timeout")
    if isinstance(exc, ConnectTimeoutError):
        return BedrockError("ConnectTimeout", "could not connect to Bedrock in time")
    if isinstance(
        exc, EndpointConnectionError | BotoConnectionError | HTTPClientError | aiohttp.ClientError
    ):
        # HTTPClientError covers a connection closed mid-answer, most often a pooled
        # keep-alive connection Bedrock closed just as it was reused: botocore's standard
        # retry mode treats it as transient, and so does our retry loop.
        return BedrockError("ConnectionError", "the connection to Bedrock failed")
    return BedrockError("ConnectionError", f"unexpected transport failure ({type(exc).__name__})")


_TRANSPORT_ERRORS = (
    ClientError,
    ReadTimeoutError,
    ConnectTimeoutError,
    EndpointConnectionError,
    BotoConnectionError,
    HTTPClientError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)


def _closed_under(exc: asyncio.CancelledError) -> BedrockError:
    """A CancelledError that did not cancel us: the client was closed mid-call.

    aiohttp cancels the calls queued for a pooled connection when its session closes (at
    shutdown or a config reload). That cancellation is not the caller's own (its task is
    not being cancelled), so it must surface as a failed call, not as a CancelledError
    that would silently end the request's task.
    """
    return BedrockError("ConnectionError", "the Bedrock client was closed during the call")


def _cancelled_by_caller() -> bool:
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class _AioStream:
    """Wraps botocore's event stream: typed errors, and `aclose()` that drops the connection.

    Closing (rather than draining) the HTTP response is deliberate: when the client has
    gone, reading the rest of the answer would only burn tokens we cannot deliver.
    """

    def __init__(self, event_stream: Any, model_id: str | None = None) -> None:
        self._events = event_stream
        self._model_id = model_id

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in self._events:
                yield event
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc, self._model_id) from exc

    async def aclose(self) -> None:
        self._events.close()


class _AsBedrockErrors:
    """Every failure of one call as a `BedrockError` (see `_bedrock_error`); a cancellation
    is passed on when it is the caller's, and is a failure when the client closed under it.

    A class, not a `contextlib.contextmanager`: it wraps every Bedrock call, and a
    generator-based one costs a generator and two more frames each time."""

    __slots__ = ("_model_id",)

    def __init__(self, model_id: str) -> None:
        self._model_id = model_id

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, _TRANSPORT_ERRORS):
            raise _bedrock_error(exc, self._model_id) from exc
        if isinstance(exc, asyncio.CancelledError) and not _cancelled_by_caller():
            raise _closed_under(exc) from exc


def _invoke_args(model_id: str, body: bytes, guardrail: Mapping[str, str] | None) -> dict[str, Any]:
    """InvokeModel's parameters, whole or streamed: a JSON body both ways, and the
    gateway's guardrail (`guardrailIdentifier`, ...) when one applies."""
    return {
        "modelId": model_id,
        "body": body,
        "contentType": "application/json",
        "accept": "application/json",
        **(guardrail or {}),
    }


class _Calls(abc.ABC):
    """The `BedrockClient` calls over aiobotocore clients; `_client(region)` picks one."""

    @abc.abstractmethod
    def _client(self, region: str | None) -> Any: ...

    async def converse(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> dict[str, Any]:
        client = self._client(region)
        with _AsBedrockErrors(model_id):
            response: dict[str, Any] = await client.converse(modelId=model_id, **request)
        return response

    async def converse_stream(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> BedrockStream:
        client = self._client(region)
        with _AsBedrockErrors(model_id):
            response = await client.converse_stream(modelId=model_id, **request)
        return _AioStream(response["stream"], model_id)

    async def invoke_model(
        self,
        model_id: str,
        body: bytes,
        *,
        region: str | None = None,
        guardrail: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        client = self._client(region)
        with _AsBedrockErrors(model_id):
            response = await client.invoke_model(**_invoke_args(model_id, body, guardrail))
            async with response["body"] as stream:
                data: bytes = await stream.read()
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return InvokeResult(data, headers.get("x-amzn-bedrock-input-token-count"))

    async def invoke_model_stream(
        self,
        model_id: str,
        body: bytes,
        *,
        region: str | None = None,
        guardrail: Mapping[str, str] | None = None,
    ) -> BedrockStream:
        client = self._client(region)
        with _AsBedrockErrors(model_id):
            response = await client.invoke_model_with_response_stream(
                **_invoke_args(model_id, body, guardrail)
            )
        return _AioStream(response["body"], model_id)

    async def count_tokens(
        self, model_id: str, input: Mapping[str, Any], *, region: str | None = None
    ) -> int:
        client = self._client(region)
        with _AsBedrockErrors(model_id):
            response = await client.count_tokens(modelId=model_id, input=dict(input))
        return int(response.get("inputTokens") or 0)
