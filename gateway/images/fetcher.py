"""Fetching `image_url` images over http(s), for models that need the bytes inline.

Bedrock takes images only as bytes, so an OpenAI request that points at
`https://example.com/cat.png` makes the gateway download it. The URL comes from the
caller, and the gateway usually sits inside a private network, so every fetch is treated
as hostile input:

* the connection can only go to public addresses, checked after DNS resolution and pinned
  for the connection itself (see `gateway.images.guard` for how, and why);
* redirects are followed by hand, at most `MAX_REDIRECTS`, and each hop goes through the
  same URL policy (scheme, no credentials, `allowed_hosts`) and address check;
* `images.timeout_s` bounds the whole fetch, redirects and DNS included, and
  `images.max_bytes` bounds the body, refused from `Content-Length` when it is declared
  and cut off while streaming when it is not;
* the response must say it is a PNG, JPEG, GIF or WebP image and the bytes must be one.
  When the two disagree the bytes win, as they would for Bedrock;
* error messages name the host, never the full URL: query strings of pre-signed URLs are
  credentials.

The fetcher drives its transport directly instead of going through `httpx.AsyncClient`.
A client would keep a cookie jar shared by every caller's fetches, and it logs each
request's full URL at INFO level, query included. Neither is wanted here, and redirects,
the one client feature we need, must be re-checked at every hop anyway.

The default inner transport keeps no idle connections: fetches go to arbitrary hosts and
rarely repeat, and connections pooled by IP address must not be shared between host names.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Final

import httpx

from gateway import __version__
from gateway.config import ImagesConfig
from gateway.errors import InvalidRequestError
from gateway.images.guard import (
    AddressGuardTransport,
    BlockedAddressError,
    Resolver,
    UnresolvableHostError,
    system_resolver,
)
from gateway.translate.shared.images import (
    MIME_TYPES,
    ImageFormat,
    mime_image_format,
    sniff_image_format,
)

__all__ = ["MAX_CONCURRENT_FETCHES", "MAX_REDIRECTS", "ImageFetcher"]

MAX_REDIRECTS: Final = 3
# Remote image fetches in flight at once in one process, across all requests.
MAX_CONCURRENT_FETCHES: Final = 32

_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_SCHEMES: Final = frozenset({"http", "https"})
_HEADERS: Final = {
    "accept": ", ".join(MIME_TYPES),
    # Compressed bodies could expand far past max_bytes in a single decoded chunk.
    "accept-encoding": "identity",
    "user-agent": f"bedrock-gateway/{__version__}",
}
# Server-supplied header values are echoed in errors only up to this length.
_ECHO_LIMIT: Final = 60


class ImageFetcher:
    """Downloads remote images under the `images` config; one per application.

    Create it in the lifespan and `aclose()` it at shutdown: it owns a connection pool.
    `resolver` and `transport` (the inner transport, below the address guard) exist so
    tests can run without DNS or network.
    """

    def __init__(
        self,
        config: ImagesConfig,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrent: int = MAX_CONCURRENT_FETCHES,
    ) -> None:
        self._config = config
        # All requests' fetches together: many requests with many images each must not
        # open thousands of connections, or hold thousands of image bodies, at once.
        self._slots = asyncio.Semaphore(max_concurrent)
        self._allowed_hosts = [_host_pattern(entry) for entry in config.allowed_hosts]
        if transport is None:
            transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self._transport = AddressGuardTransport(transport, resolver=resolver or system_resolver)
        self._timeouts = httpx.Timeout(config.timeout_s).as_dict()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def fetch(self, url: str, *, param: str) -> tuple[ImageFormat, bytes]:
        """Download the image at `url` and return (format, bytes).

        Raises `InvalidRequestError` naming `param` (e.g. `messages[2].content[1].image_url`)
        for anything that stops the gateway from using the image.
        """
        if not self._config.fetch_remote:
            raise InvalidRequestError(
                "remote image URLs are disabled on this gateway; send the image inline as a "
                "data URL (data:image/png;base64,...)",
                param=param,
            )
        target = self._checked_url(url, param=param, redirect=False)
        redirects = 0
        try:
            async with self._slots, asyncio.timeout(self._config.timeout_s):
                while True:
                    outcome = await self._get(target, param=param)
                    if not isinstance(outcome, httpx.URL):
                        return outcome
                    if redirects == MAX_REDIRECTS:
                        raise InvalidRequestError(
                            f"the image URL redirected more than {MAX_REDIRECTS} times",
                            param=param,
                        )
                    redirects += 1
                    target = self._checked_url(outcome, param=param, redirect=True)
        except TimeoutError:
            raise self._timed_out(target, param) from None

    def _checked_url(self, url: str | httpx.URL, *, param: str, redirect: bool) -> httpx.URL:
        """`url` parsed, if the URL policy allows it: http(s), no credentials, allowed host."""
        where = "the image URL redirected to" if redirect else "the image URL is"
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise InvalidRequestError(f"{where} not a valid URL", param=param) from None
        if parsed.scheme not in _SCHEMES:
            scheme = parsed.scheme[:_ECHO_LIMIT] or "(none)"
            raise InvalidRequestError(
                f"{where} a URL with scheme {scheme!r}; only http and https images are fetched",
                param=param,
            )
        if parsed.userinfo:
            raise InvalidRequestError(
                f"{where} a URL with a user name or password, which is not allowed",
                param=param,
            )
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise InvalidRequestError(f"{where} a URL without a host", param=param)
        # httpx accepts any number here, and getaddrinfo silently wraps 99999 to 34463.
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise InvalidRequestError(f"{where} a URL with an invalid port", param=param)
        if self._allowed_hosts and not _host_allowed(host, self._allowed_hosts):
            raise InvalidRequestError(
                f"image host {_shown_host(parsed)!r} is not in this gateway's allowed image hosts",
                param=param,
            )
        return parsed

    async def _get(self, url: httpx.URL, *, param: str) -> tuple[ImageFormat, bytes] | httpx.URL:
        """One request: the image, or the URL a redirect points at."""
        host = _shown_host(url)
        request = httpx.Request(
            "GET", url, headers=_HEADERS, extensions={"timeout": self._timeouts}
        )
        try:
            response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                return await self._read(response, url, param=param)
            finally:
                await response.aclose()
        except (BlockedAddressError, UnresolvableHostError) as exc:
            # Written by the guard: they name the host, never the URL.
            raise InvalidRequestError(f"cannot fetch the image: {exc}", param=param) from None
        except httpx.TimeoutException:
            raise self._timed_out(url, param) from None
        except httpx.ConnectError:
            raise InvalidRequestError(
                f"could not connect to image host {host!r}", param=param
            ) from None
        except httpx.TransportError as exc:
            raise InvalidRequestError(
                f"fetching the image from {host!r} failed ({type(exc).__name__})", param=param
            ) from None

    async def _read(
        self, response: httpx.Response, url: httpx.URL, *, param: str
    ) -> tuple[ImageFormat, bytes] | httpx.URL:
        host = _shown_host(url)
        location = response.headers.get("location")
        if response.status_code in _REDIRECT_STATUSES and location:
            try:
                return url.join(location)
            except httpx.InvalidURL:
                raise InvalidRequestError(
                    f"image host {host!r} redirected to an invalid URL", param=param
                ) from None
        if not response.is_success:
            raise InvalidRequestError(
                f"image host {host!r} answered HTTP {response.status_code}", param=param
            )

        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise InvalidRequestError(
                f"image host {host!r} sent a {encoding[:_ECHO_LIMIT]!r}-encoded body; "
                "only unencoded images are accepted",
                param=param,
            )
        content_type = response.headers.get("content-type", "")
        if mime_image_format(content_type) is None:
            shown = content_type[:_ECHO_LIMIT] or "(none)"
            raise InvalidRequestError(
                f"image host {host!r} sent content type {shown!r}; expected one of "
                f"{', '.join(MIME_TYPES)}",
                param=param,
            )
        limit = self._config.max_bytes
        declared = _content_length(response)
        if declared is not None and declared > limit:
            raise InvalidRequestError(
                f"the image at {host!r} is {declared} bytes, over the {limit}-byte limit",
                param=param,
            )

        body = bytearray()
        # Content-Encoding is identity by now, so this is the raw body, chunk by chunk.
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise InvalidRequestError(
                    f"the image at {host!r} is over the {limit}-byte limit", param=param
                )
        image_format = sniff_image_format(bytes(body))
        if image_format is None:
            raise InvalidRequestError(
                f"the content at {host!r} is not a PNG, JPEG, GIF or WebP image, whatever "
                "its content type says",
                param=param,
            )
        return image_format, bytes(body)

    def _timed_out(self, url: httpx.URL, param: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"fetching the image from {_shown_host(url)!r} timed out after "
            f"{self._config.timeout_s:g}s",
            param=param,
        )


def _shown_host(url: httpx.URL) -> str:
    """Host and explicit port: what an error may say about a URL."""
    return url.netloc.decode("ascii")


def _content_length(response: httpx.Response) -> int | None:
    # Malformed or repeated values are left to the streaming check.
    value = response.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _host_pattern(entry: str) -> tuple[bool, str]:
    """An `allowed_hosts` entry as (is_wildcard, IDNA-encoded lower-case name)."""
    text = entry.strip().lower()
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    problem = f"images.allowed_hosts: {entry!r} is not a host name or a '*.domain' pattern"
    if not name or any(char in name for char in "/:@?#*[]% "):
        raise ValueError(problem)
    try:
        encoded = httpx.URL(f"http://{name}/").raw_host.decode("ascii")
    except httpx.InvalidURL:
        raise ValueError(problem) from None
    return wildcard, encoded.rstrip(".")


def _host_allowed(host: str, patterns: list[tuple[bool, str]]) -> bool:
    """Exact match, or for `*.example.com` any subdomain (but not example.com itself)."""
    host = host.rstrip(".")
    for wildcard, name in patterns:
        if host == name and not wildcard:
            return True
        if wildcard and host.endswith("." + name):
            return True
    return False
