"""Which network addresses the gateway may fetch images from, enforced at connect time.

A chat request that carries `image_url: "http://169.254.169.254/latest/meta-data/"` asks
the gateway to make a request from *inside* its network on the caller's behalf: server-side
request forgery. Checking the URL's host name is not enough. A public-looking name can
resolve to a private address, and a name can resolve to a public address when checked and
to a private one a moment later when the HTTP library looks it up again (DNS rebinding).

So the check sits where the connection is made. `AddressGuardTransport` wraps an ordinary
httpx transport and, for every request:

1. resolves the host name once, with an injectable resolver (by default the event loop's
   `getaddrinfo`, which runs in a worker thread and does not block the loop);
2. refuses the request if *any* resolved address is non-public (`forbidden_reason`): one
   bad record is enough for an attacker to win a race between records;
3. rewrites the request URL to the checked IP address, so the inner transport connects to
   exactly that address and never looks the name up again. The `Host` header keeps the
   original name, and for https the `sni_hostname` request extension (honoured by
   httpcore) makes TLS send the original name as SNI and verify the certificate against
   it, not against the IP.

Because connections are pooled by (scheme, IP, port), two names on one IP could otherwise
share a TLS connection verified for only one of them; the fetcher's default inner transport
therefore keeps no idle connections.

IP literals are checked without resolution, and spellings that C resolvers accept but
that do not look like addresses (`2130706433`, `0x7f.1`, `127.1`) are parsed the way
browsers do (WHATWG URL, IPv4 parser), so `http://2130706433/` is seen as 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import httpx

__all__ = [
    "AddressGuardTransport",
    "BlockedAddressError",
    "IPAddress",
    "Resolver",
    "UnresolvableHostError",
    "forbidden_reason",
    "parse_ip_host",
    "system_resolver",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`async def resolve(host, port) -> [address, ...]`; raises OSError when the name is unknown."""


class BlockedAddressError(httpx.ConnectError):
    """The host is, or resolves to, an address the gateway must not connect to.

    A `ConnectError` so that generic httpx callers treat it as a failed connection; the
    message names the host but never the URL (whose query may hold a signed token).
    """


class UnresolvableHostError(httpx.ConnectError):
    """The host name has no usable address."""


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(*entries: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in entries)


# Spelled out rather than left to `ipaddress.is_private` & co, whose tables have changed
# between Python patch releases; those properties still act as a backstop below.
_FORBIDDEN_V4: Final = _networks(
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved or broadcast"),
)

_FORBIDDEN_V6: Final = _networks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    # Teredo (2001::/32), benchmarking, ORCHID...: nothing an image is served from.
    ("2001::/23", "IETF protocol assignment"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the gateway must not connect to `address` (e.g. "loopback"), or None if public.

    IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
    (`::ffff:a.b.c.d`, which the kernel turns into a plain IPv4 connection), NAT64
    `64:ff9b::/96` (a NAT64 gateway connects to the embedded address; public embedded
    addresses stay allowed because IPv6-only networks with DNS64 reach every IPv4 site
    this way) and 6to4 `2002::/16`.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped IPv6"
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return None if reason is None else f"{reason} (embedded IPv4)"
        if address.sixtofour is not None:
            reason = forbidden_reason(address.sixtofour)
            if reason is not None:
                return f"{reason} (6to4)"
        table = _FORBIDDEN_V6
    else:
        table = _FORBIDDEN_V4
    for network, reason in table:
        if address in network:
            return reason
    if (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    ):
        return "not globally routable"
    return None


_HOST_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?", re.IGNORECASE)
_IPV4_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP address a URL host denotes, None for a host name; ValueError if malformed.

    `host` is as httpx gives it: lower-case, IDNA-encoded, IPv6 without brackets. A host
    whose last label is a number is an IPv4 address in WHATWG's sense, in any of the
    forms `inet_aton` accepts: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x),
    the last part filling the remaining bytes.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _IPV4_NUMBER.fullmatch(parts[-1]):
        return None
    numbers = [_ipv4_number(part, host) for part in parts]
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str, host: str) -> int:
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10)
    except ValueError:
        raise ValueError(f"{host!r} is not a valid IPv4 address") from None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for `host`, in its order.

    `loop.getaddrinfo` runs the blocking lookup in the loop's executor, so a slow DNS
    server stalls this fetch only, not every request the event loop is serving.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    families = (socket.AF_INET, socket.AF_INET6)
    return list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in families))


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class AddressGuardTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to public addresses, pinned at check time.

    `inner` does the actual HTTP; it receives requests whose URL host is the checked IP
    address, with the original `Host` header and (for https) `sni_hostname` extension.
    If several addresses pass, they are tried in resolver order while the connection
    itself fails (`httpx.ConnectError`), e.g. an IPv6 address on a host without IPv6.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, resolver: Resolver = system_resolver
    ) -> None:
        self._inner = inner
        self._resolve = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
        if port is None:
            raise BlockedAddressError(
                f"only http and https are fetched, not {url.scheme!r}", request=request
            )
        host = url.raw_host.decode("ascii")
        addresses, is_name = await self._checked_addresses(host, port, request)
        error: httpx.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.handle_async_request(
                    _pinned(request, address, sni_hostname=host if is_name else None)
                )
            except httpx.ConnectError as exc:
                error = exc
        assert error is not None  # `addresses` is never empty
        raise error

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _checked_addresses(
        self, host: str, port: int, request: httpx.Request
    ) -> tuple[list[IPAddress], bool]:
        """The addresses to connect to, every one of them allowed, and whether host is a name."""
        try:
            literal = parse_ip_host(host)
        except ValueError as exc:
            raise BlockedAddressError(str(exc), request=request) from None
        if literal is not None:
            reason = forbidden_reason(literal)
            if reason is not None:
                logger.warning("refused image fetch from %s address %s", reason, host)
                raise BlockedAddressError(
                    f"{host} is a {reason} address; the gateway only fetches images from "
                    "public addresses",
                    request=request,
                )
            return [_connectable(literal)], False

        if not _HOST_NAME.fullmatch(host):
            raise BlockedAddressError(f"{host!r} is not a valid host name", request=request)
        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:
            logger.info("refused image fetch from %s: it does not resolve (%s)", host, exc)
            raise UnresolvableHostError(_not_public(host), request=request) from None
        if not resolved:
            logger.info("refused image fetch from %s: it has no addresses", host)
            raise UnresolvableHostError(_not_public(host), request=request)
        addresses = list(_parse_resolved(resolved))
        for address, text in zip(addresses, resolved, strict=True):
            reason = forbidden_reason(address) if address is not None else "unparseable"
            if reason is not None:
                # The address is for the operator only: telling the client which private
                # address a name maps to would help it map the internal network.
                logger.warning(
                    "refused image fetch from %s: it resolves to %s address %s", host, reason, text
                )
                raise BlockedAddressError(_not_public(host), request=request)
        checked = [_connectable(address) for address in addresses if address is not None]
        return list(dict.fromkeys(checked)), True


def _not_public(host: str) -> str:
    # One message whether the name does not resolve or resolves to a private address: two
    # would let a caller probe which internal DNS names exist (issue 19, item 14). The
    # log line says which it was.
    return (
        f"the host {host!r} does not resolve to a public address; the gateway only "
        "fetches images from public addresses"
    )


def _parse_resolved(resolved: Iterable[str]) -> Iterable[IPAddress | None]:
    for text in resolved:
        try:
            yield ipaddress.ip_address(text)
        except ValueError:
            yield None


def _connectable(address: IPAddress) -> IPAddress:
    # An IPv4-mapped address reaches the IPv4 host; connect over IPv4 and avoid depending
    # on the socket being dual-stack.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _pinned(
    request: httpx.Request, address: IPAddress, *, sni_hostname: str | None
) -> httpx.Request:
    extensions = dict(request.extensions)
    if sni_hostname is not None and request.url.scheme == "https":
        extensions["sni_hostname"] = sni_hostname.rstrip(".")
    # Passing `stream` keeps the headers exactly as they are, Host included.
    return httpx.Request(
        request.method,
        request.url.copy_with(host=str(address)),
        headers=request.headers,
        stream=request.stream,
        extensions=extensions,
    )
