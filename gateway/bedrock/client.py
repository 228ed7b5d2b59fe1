"""The only module that talks to Bedrock: a small protocol and its aiobotocore implementation.

Handlers depend on the `BedrockClient` protocol, never on aiobotocore, so fast tests can inject
a fake and the rest of the gateway never sees botocore exceptions: every failure arrives as
a `BedrockError` carrying the Bedrock exception name (`ThrottlingException`, ...) or one of
our own names for transport failures (`ConnectionError`, `ConnectTimeout`, `ReadTimeout`).

One client per region is opened in the app lifespan and shared by every request. Creating a
client per request costs a TLS handshake, a credential lookup and several milliseconds of
botocore model loading, and leaks connections under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiobotocore
import aiohttp
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
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

import gateway
from gateway.config import BedrockConfig
from gateway.translate.shared.errors import access_denied_detail

__all__ = [
    "AioBedrockClient",
    "BedrockClient",
    "BedrockError",
    "BedrockStream",
    "InvokeResult",
    "StaticCredentials",
    "aio_config",
]

logger = logging.getLogger("gateway.bedrock")

# How long an idle pooled connection is kept for reuse. Bedrock's front end closes idle
# keep-alive connections after about 20 s; closing ours first means a reused connection is
# almost never one the server is closing at that very moment (which costs a retry).
KEEPALIVE_S = 12.0


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


def _user_agent() -> str:
    """`bedrock-gateway/<v> aiobotocore/<v> botocore/<v> Python/<v>`: who called, in what."""
    python = ".".join(str(part) for part in sys.version_info[:3])
    return (
        f"bedrock-gateway/{gateway.__version__} aiobotocore/{aiobotocore.__version__} "
        f"botocore/{botocore.__version__} Python/{python}"
    )


def aio_config(config: BedrockConfig) -> AioConfig:
    """aiobotocore's aiohttp session, tuned from `bedrock.*`: pool, keep-alive, timeouts."""
    return AioConfig(
        # One pool per client (so per region), shared by every request of this worker.
        max_pool_connections=config.max_connections,
        connect_timeout=config.connect_timeout_s,
        # The longest silence while reading an answer, not the longest answer: a stream
        # that keeps sending is never cut.
        read_timeout=config.read_timeout_s,
        connector_args={
            "keepalive_timeout": KEEPALIVE_S,
            # Bedrock endpoints resolve to a few addresses that rarely change; the resolver
            # cache keeps a DNS lookup off every new connection without pinning one forever.
            "use_dns_cache": True,
            "ttl_dns_cache": 60,
        },
        # One attempt per call: `gateway.bedrock.retries` retries (bounded, jittered, before the
        # first byte only) and falls back; botocore's own backoff would stack on top of
        # it and cannot see fallbacks. The mode still selects botocore's behaviour.
        retries={"mode": config.retries.mode, "total_max_attempts": 1},
        # SO_KEEPALIVE on every connection: a stream that waits minutes for a long answer
        # notices a peer that vanished (NAT, load balancer) instead of hanging until the
        # read timeout.
        tcp_keepalive=True,
        # botocore's client-side check of every request against the service model costs
        # ~15 us for one short message and ~150 us for a 20-turn chat, on every call. Our
        # requests are built by `gateway.translate` from validated input, and Bedrock
        # validates again on its side: a mistake of ours still comes back as Bedrock's
        # ValidationException (a 400 with Bedrock's message) instead of a client-side
        # ParamValidationError, which nothing here catches (it would be a 500).
        parameter_validation=False,
        # A fixed User-Agent, built once. botocore otherwise rebuilds and sanitises its
        # default one twice per call (~10% of a Converse call's client CPU in profiles),
        # and this one tells an operator reading CloudTrail that the gateway called.
        user_agent=_user_agent(),
    )


class AioBedrockClient:
    """`BedrockClient` over one long-lived aiobotocore client per region.

    Use as `async with AioBedrockClient(config, regions=...) as client:` in the lifespan.
    `credentials` is for the built-in demo only; real deployments use the AWS default chain.
    """

    def __init__(
        self,
        config: BedrockConfig,
        *,
        regions: Iterable[str | None] = (),
        credentials: StaticCredentials | None = None,
    ) -> None:
        self._config = config
        self._wanted_regions = {config.region, *regions}
        self._credentials = credentials
        self._clients: dict[str | None, Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._default_region: str | None = config.region

    async def __aenter__(self) -> AioBedrockClient:
        # Session() reads ~/.aws/config and credential files synchronously: keep that off the
        # event loop. Credential refresh afterwards is aiobotocore's own async code.
        session = await asyncio.to_thread(self._new_session)
        self._default_region = self._config.region or session.get_config_variable("region")
        tuned = aio_config(self._config)
        regions = {r or self._default_region for r in self._wanted_regions}
        try:
            for region in sorted(r or "" for r in regions):
                client = await self._stack.enter_async_context(
                    session.create_client(
                        "bedrock-runtime",
                        region_name=region or None,
                        endpoint_url=self._config.endpoint_url,
                        config=tuned,
                    )
                )
                self._clients[region or None] = client
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    def _new_session(self) -> Any:
        # botocore reads AWS_DEFAULT_REGION but not AWS_REGION, which most AWS SDKs (and
        # EKS, ECS and Lambda) set; honour both so "region from the AWS environment" holds.
        region = (
            self._config.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or None
        )
        session = AioSession()
        if region:
            session.set_config_variable("region", region)
        if self._credentials is not None:
            session.set_credentials(self._credentials.access_key, self._credentials.secret_key)
        return session

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()
        self._clients.clear()

    @property
    def default_region(self) -> str | None:
        return self._default_region

    def _client(self, region: str | None) -> Any:
        key = region or self._default_region
        try:
            return self._clients[key]
        except KeyError:
            raise BedrockError(
                "ConfigurationError", f"no Bedrock client was opened for region {key!r}"
            ) from None

    async def converse(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> dict[str, Any]:
        client = self._client(region)
        try:
            response: dict[str, Any] = await client.converse(modelId=model_id, **request)
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc, model_id) from exc
        except asyncio.CancelledError as exc:
            if _cancelled_by_caller():
                raise
            raise _closed_under(exc) from exc
        return response

    async def converse_stream(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> BedrockStream:
        client = self._client(region)
        try:
            response = await client.converse_stream(modelId=model_id, **request)
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc, model_id) from exc
        except asyncio.CancelledError as exc:
            if _cancelled_by_caller():
                raise
            raise _closed_under(exc) from exc
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
        try:
            response = await client.invoke_model(
                modelId=model_id,
                body=body,
                contentType="application/json",
                accept="application/json",
                **(guardrail or {}),
            )
            async with response["body"] as stream:
                data: bytes = await stream.read()
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc, model_id) from exc
        except asyncio.CancelledError as exc:
            if _cancelled_by_caller():
                raise
            raise _closed_under(exc) from exc
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
        try:
            response = await client.invoke_model_with_response_stream(
                modelId=model_id,
                body=body,
                contentType="application/json",
                accept="application/json",
                **(guardrail or {}),
            )
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc) from exc
        return _AioStream(response["body"])

    async def count_tokens(
        self, model_id: str, input: Mapping[str, Any], *, region: str | None = None
    ) -> int:
        client = self._client(region)
        try:
            response = await client.count_tokens(modelId=model_id, input=dict(input))
        except _TRANSPORT_ERRORS as exc:
            raise _bedrock_error(exc) from exc
        return int(response.get("inputTokens") or 0)
