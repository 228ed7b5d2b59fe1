"""`BedrockHTTPSession`: the HTTP layer under aiobotocore, plugged in with `http_session_cls`.

aiobotocore lets a client choose the class that sends its signed requests
(`AioConfig(http_session_cls=...)`); this is ours. Everything above it is untouched:
aiobotocore still serializes, signs, retries, and parses the answers and event streams.
Only the trip over the wire is ours, and the reason is cost. Sending one Converse call
through aiohttp took about 300 us of CPU here, a third of the whole call: a `ClientSession`
request builds a `CIMultiDict` of headers, a `yarl.URL`, tracing hooks, timers and a
`ClientResponse` with its `StreamReader`. A request from botocore needs none of that: its
headers are final and signed, its body is bytes, and the answer is read whole or as a
stream of chunks. Here a request is one `write` of bytes built in a single join, and the
answer is parsed by `httptools` (as uvicorn parses requests), which cut the client CPU of
a Converse call by ~25% and the added latency by ~0.3 ms (README, Performance).

What aiohttp did that a Bedrock client needs is here too: a keep-alive pool per origin,
bounded by `max_pool_connections` (callers queue for a free connection), connections idle
for more than 12 s closed before reuse (AWS closes them at 20 s, aiobotocore's
`DEFAULT_KEEPALIVE_TIMEOUT` is 12), TLS with certificate and hostname checks against the
bundle botocore chose (`verify`, `AWS_CA_BUNDLE`), the client certificate, the connect and
read timeouts, and the socket options botocore asks for (TCP keep-alive), which
aiobotocore's aiohttp session ignores. Requests this session does not handle go to
aiobotocore's own aiohttp session instead: those through a proxy (`HTTPS_PROXY`, the
client's `proxies`), and bodies that are not plain bytes (streamed uploads).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    SSLError,
)
from botocore.httpsession import (
    MAX_POOL_CONNECTIONS,
    ProxyConfiguration,
    get_cert_path,
)

from gateway.transport.connection import Connection
from gateway.transport.response import Response

__all__ = ["KEEPALIVE_S", "BedrockHTTPSession"]

# aiobotocore's DEFAULT_KEEPALIVE_TIMEOUT: below the 20 s after which AWS closes an idle
# connection, so that we rarely reuse one that is being closed under us.
KEEPALIVE_S = 12.0

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Origin:
    """The connections to one scheme://host:port: idle ones (newest last) and a limit."""

    __slots__ = (
        "closed",
        "connections",
        "host",
        "idle",
        "limit",
        "open",
        "port",
        "server_hostname",
        "ssl",
        "waiters",
    )

    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, limit: int
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.server_hostname = host if ssl_context is not None else None
        self.limit = limit
        self.idle: list[Connection] = []
        self.connections: set[Connection] = set()  # every open one, idle or busy
        self.open = 0  # connected or connecting, idle or busy
        self.closed = False
        # Callers waiting for a connection: they get an idle one, or None and a free slot.
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()

    def take_idle(self, now: float) -> Connection | None:
        idle = self.idle
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_S:
                return connection
            connection.abort()  # stale: connection_lost gives its slot back
        return None

    def adopt(self, connection: Connection) -> None:
        """A new connection is the pool's: from now on, losing it frees its slot."""
        self.connections.add(connection)
        connection.on_lost = self.lost

    def reusable(self, connection: Connection) -> None:
        if self.closed:
            connection.abort()
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def lost(self, connection: Connection) -> None:
        self.connections.discard(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)
        self.free_slot()

    def close(self) -> None:
        self.closed = True
        for connection in list(self.connections):
            connection.abort()
        self.idle.clear()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(HTTPClientError(error="the session was closed"))
        self.waiters.clear()

    def free_slot(self) -> None:
        self.open -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.open += 1  # the slot passes to the waiter, who connects
                waiter.set_result(None)
                return


class BedrockHTTPSession:
    """An aiobotocore HTTP session: `send(request) -> AioAWSResponse`, pooled keep-alive.

    The constructor takes what aiobotocore's endpoint creator passes to any session class.
    """

    def __init__(
        self,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        max_pool_connections: int = MAX_POOL_CONNECTIONS,
        socket_options: list[tuple[int, int, int]] | None = None,
        client_cert: str | tuple[str, str] | None = None,
        proxies_config: Mapping[str, Any] | None = None,
        connector_args: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {
            "verify": verify,
            "proxies": proxies,
            "timeout": timeout,
            "max_pool_connections": max_pool_connections,
            "socket_options": socket_options,
            "client_cert": client_cert,
            "proxies_config": proxies_config,
            "connector_args": connector_args,
        }
        self._proxy_config = ProxyConfiguration(proxies=proxies, proxies_settings=proxies_config)
        self._proxied = bool(proxies)
        self._connect_timeout: float | None
        self._read_timeout: float | None
        if isinstance(timeout, tuple | list):
            self._connect_timeout, self._read_timeout = timeout
        else:
            self._connect_timeout = self._read_timeout = timeout
        self._limit = max_pool_connections
        self._socket_options = list(socket_options or ())
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        # Built now, while the client is made in the lifespan: reading the CA bundle is
        # file I/O that the first HTTPS request would otherwise do on the event loop. A
        # bad bundle fails the first HTTPS request, as it would with aiohttp, not start-up
        # (the endpoint may well be plain HTTP).
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_error: Exception | None = None
        try:
            self._ssl_context = _tls_context(verify, client_cert)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._ssl_error = exc
        self._fallback: AIOHTTPSession | None = None
        self._closed = False

    async def __aenter__(self) -> BedrockHTTPSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()
        if self._fallback is not None:
            await self._fallback.close()
            self._fallback = None

    async def send(self, request: Any) -> AioAWSResponse:
        """Send one prepared (signed) botocore request; read the body unless it streams."""
        url: str = request.url
        body = request.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes | bytearray):
            return await self._aiohttp().send(request)
        if self._proxied and self._proxy_config.proxy_url_for(url):
            return await self._aiohttp().send(request)
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname
        if scheme not in _DEFAULT_PORTS or not host:
            raise HTTPClientError(error=f"cannot send a request to {url!r}")
        port = parts.port or _DEFAULT_PORTS[scheme]
        headers = request.headers
        if "Transfer-Encoding" in headers or "Expect" in headers:
            return await self._aiohttp().send(request)
        head = _request_head(
            request.method,
            parts.path or "/",
            parts.query,
            _host_header(scheme, host, parts.port),
            headers,
            len(body),
        )
        origin = self._origin(scheme, host, port)
        connection = await self._acquire(origin, url)
        response = Response(connection, url)
        try:
            await connection.exchange(response, head, bytes(body), self._read_timeout)
            answer = AioAWSResponse(url, response.status, response.headers, response)
            if not request.stream_output:
                await answer.content  # read whole, and kept by `answer` for the parser
        except BaseException:
            # Cancelled (the caller left) or failed mid-answer: the connection is in an
            # unknown state and is dropped. (Once the answer is complete the connection
            # is back in the pool, maybe serving another request: close() leaves it be.)
            response.close()
            raise
        return answer

    # Connections

    def _origin(self, scheme: str, host: str, port: int) -> _Origin:
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            context = None
            if scheme == "https":
                if self._ssl_context is None:
                    url = f"https://{host}:{port}"
                    raise SSLError(endpoint_url=url, error=self._ssl_error)
                context = self._ssl_context
            origin = self._origins[key] = _Origin(host, port, context, self._limit)
        return origin

    async def _acquire(self, origin: _Origin, url: str) -> Connection:
        if self._closed:
            raise HTTPClientError(error="the session was closed")
        loop = asyncio.get_running_loop()
        while True:
            connection = origin.take_idle(loop.time())
            if connection is not None:
                return connection
            if origin.open < origin.limit:
                origin.open += 1
                break
            waiter: asyncio.Future[Connection | None] = loop.create_future()
            origin.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._give_back(origin, waiter.result())
                raise
            if handed is None:
                break  # a slot was passed on to us: connect
            if not handed.closed:
                return handed
            # Closed by the server since it was handed over; its slot went with it.
        try:
            return await self._connect(loop, origin, url)
        except BaseException:
            origin.free_slot()
            raise

    def _give_back(self, origin: _Origin, connection: Connection | None) -> None:
        """A waiter was handed a connection (or a slot) but was cancelled before taking it."""
        if connection is None:
            origin.free_slot()
        elif connection.closed:
            pass  # its connection_lost already gave the slot back
        else:
            origin.reusable(connection)

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: _Origin, url: str
    ) -> Connection:
        """A new connection; its slot is the caller's until the very end, then the pool's."""
        made: list[Connection] = []

        def protocol() -> Connection:
            made.append(Connection(loop, origin.reusable))
            return made[-1]

        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    protocol,
                    origin.host,
                    origin.port,
                    ssl=origin.ssl,
                    server_hostname=origin.server_hostname,
                )
            connection = made[0]
            connection.set_socket_options(self._socket_options)
            if connection.closed:
                raise ConnectionResetError("closed as it was opened")
        except BaseException as exc:
            # Cancelled or failed half-way (a TLS handshake may fail after the TCP
            # connection was made): close what was made; the caller frees the slot.
            for connection in made:
                connection.abort()
            if isinstance(exc, TimeoutError):
                raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
            if isinstance(exc, ssl.SSLError | ssl.CertificateError):
                raise SSLError(endpoint_url=url, error=exc) from exc
            if isinstance(exc, OSError):
                raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
            raise
        origin.adopt(connection)
        return connection

    def _aiohttp(self) -> AIOHTTPSession:
        if self._fallback is None:
            self._fallback = AIOHTTPSession(**self._settings)
        return self._fallback


def _tls_context(verify: bool | str, client_cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    """Certificates and host names checked against botocore's bundle, unless verify=False."""
    if verify:
        context = ssl.create_default_context(cafile=get_cert_path(verify))
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    if isinstance(client_cert, str):
        context.load_cert_chain(client_cert)
    elif isinstance(client_cert, tuple):
        context.load_cert_chain(client_cert[0], client_cert[1])
    return context


def _host_header(scheme: str, host: str, port: int | None) -> str:
    """The Host header exactly as SigV4 signed it (botocore's `_host_from_url`)."""
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{host}:{port}"
    return host


def _request_head(
    method: str, path: str, query: str, host: str, headers: Any, length: int
) -> bytes:
    lines = [f"{method} {path}?{query}" if query else f"{method} {path}", " HTTP/1.1\r\n"]
    if "Host" not in headers:
        lines.append(f"Host: {host}\r\n")
    for name, value in headers.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if "\n" in value or "\r" in value:
            raise HTTPClientError(error=f"a line break in the {name} header")
        lines.append(f"{name}: {value}\r\n")
    if "Content-Length" not in headers:
        lines.append(f"Content-Length: {length}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise HTTPClientError(error=exc) from exc
