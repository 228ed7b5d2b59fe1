"""Remote image fetching: the SSRF guard, redirects, limits and what reaches the wire.

Nothing here touches a network. The fetcher gets a fake resolver and, below its address
guard, an `httpx.MockTransport` driven by a respx router, so every request it makes is
visible as the pinned request a real connection would carry. `_no_network` makes any
slip fail loudly instead of connecting somewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
import respx

from gateway.config import ImagesConfig
from gateway.errors import InvalidRequestError
from gateway.images.fetcher import MAX_REDIRECTS, ImageFetcher
from gateway.images.guard import forbidden_reason, parse_ip_host, system_resolver

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)
GIF = b"GIF89a\x01\x00\x01\x00" + bytes(10)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(20)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V4_B = "93.184.215.15"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
PARAM = "messages[2].content[1].image_url"

DNS: dict[str, list[str]] = {
    "images.example": [PUBLIC_V4],
    "cdn.example": [PUBLIC_V4_B],
    "v6.example": [PUBLIC_V6],
    "dual.example": [PUBLIC_V6, PUBLIC_V4],
    "internal.example": ["10.0.0.5"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": [PUBLIC_V4, "10.1.2.3"],
    "mixed6.example": [PUBLIC_V6, "::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],
    "ula.example": ["fd00::1"],
    "cgnat.example": ["100.100.1.1"],
    "scoped.example": ["fe80::1%eth0"],
    "localhost": ["127.0.0.1", "::1"],
    "garbage.example": ["not-an-address"],
    "empty.example": [],
}


class FakeResolver:
    """A DNS table; records each lookup so tests can tell how often names were resolved.

    Like a real resolver it treats `name.` (fully qualified) and `name` alike.
    """

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        name = host.removesuffix(".")
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[name])


class Body(httpx.AsyncByteStream):
    """A response body that counts how much of it was read, and whether it was closed."""

    def __init__(self, chunks: Sequence[bytes], *, stall_after: int | None = None) -> None:
        self.chunks = chunks
        self.stall_after = stall_after
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.sent == self.stall_after:
                await asyncio.sleep(30)
            self.sent += 1
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test tried to use the real network or DNS")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.MockRouter(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver(DNS)


Factory = Callable[..., ImageFetcher]


@pytest.fixture
async def make(router: respx.MockRouter, resolver: FakeResolver) -> AsyncIterator[Factory]:
    """Build fetchers over the router and fake DNS; `resolver=` and config keys override."""
    made: list[ImageFetcher] = []

    def factory(*, resolver: Any = resolver, **config: Any) -> ImageFetcher:
        fetcher = ImageFetcher(
            ImagesConfig(**config),
            resolver=resolver,
            transport=httpx.MockTransport(router.async_handler),
        )
        made.append(fetcher)
        return fetcher

    yield factory
    for fetcher in made:
        await fetcher.aclose()


def image(content: bytes, content_type: str = "image/png", **headers: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": content_type, **headers}, content=content)


async def refused(fetcher: ImageFetcher, url: str) -> str:
    with pytest.raises(InvalidRequestError) as info:
        await fetcher.fetch(url, param=PARAM)
    assert info.value.param == PARAM
    assert info.value.status == 400
    return info.value.message


# --- happy paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (PNG, "image/png", "png"),
        (JPEG, "image/jpeg", "jpeg"),
        (GIF, "image/gif", "gif"),
        (WEBP, "image/webp", "webp"),
    ],
)
async def test_fetches_each_format(
    make: Factory, router: respx.MockRouter, content: bytes, content_type: str, expected: str
) -> None:
    route = router.get(host=PUBLIC_V4, path="/pics/cat").mock(image(content, content_type))
    fetcher = make()
    assert await fetcher.fetch("https://images.example/pics/cat?v=1", param=PARAM) == (
        expected,
        content,
    )
    assert route.call_count == 1


async def test_https_request_goes_to_the_checked_ip_with_the_name_for_host_and_sni(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver
) -> None:
    route = router.get(host=PUBLIC_V4).mock(image(PNG))
    await make().fetch("https://images.example/cat.png?size=large", param=PARAM)
    request = route.calls.last.request
    assert request.url == httpx.URL(f"https://{PUBLIC_V4}/cat.png?size=large")
    assert request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"
    assert request.headers["accept-encoding"] == "identity"
    assert "timeout" in request.extensions
    # One lookup, the one that was checked: nothing downstream resolves the name again.
    assert resolver.calls == [("images.example", 443)]


async def test_plain_http_keeps_host_header_and_sets_no_sni(
    make: Factory, router: respx.MockRouter
) -> None:
    route = router.get(host=PUBLIC_V4).mock(image(PNG))
    await make().fetch("http://images.example/cat.png", param=PARAM)
    request = route.calls.last.request
    assert request.url == httpx.URL(f"http://{PUBLIC_V4}/cat.png")
    assert request.headers["host"] == "images.example"
    assert "sni_hostname" not in request.extensions


async def test_ipv6_address_and_explicit_port(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver
) -> None:
    route = router.get(host=PUBLIC_V6, port=8443).mock(image(PNG))
    await make().fetch("https://v6.example:8443/cat.png", param=PARAM)
    request = route.calls.last.request
    assert str(request.url) == f"https://[{PUBLIC_V6}]:8443/cat.png"
    assert request.headers["host"] == "v6.example:8443"
    assert request.extensions["sni_hostname"] == "v6.example"
    assert resolver.calls == [("v6.example", 8443)]


@pytest.mark.parametrize("host", [PUBLIC_V4, str(int(ipaddress.IPv4Address(PUBLIC_V4)))])
async def test_public_ip_literals_are_fetched_without_dns(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver, host: str
) -> None:
    route = router.get(host=PUBLIC_V4).mock(image(PNG))
    assert await make().fetch(f"https://{host}/cat.png", param=PARAM) == ("png", PNG)
    assert resolver.calls == []
    assert "sni_hostname" not in route.calls.last.request.extensions


async def test_falls_back_to_the_next_checked_address_when_connecting_fails(
    make: Factory, router: respx.MockRouter
) -> None:
    v6 = router.get(host=PUBLIC_V6).mock(side_effect=httpx.ConnectError("unreachable"))
    v4 = router.get(host=PUBLIC_V4).mock(image(PNG))
    assert await make().fetch("https://dual.example/cat.png", param=PARAM) == ("png", PNG)
    assert v6.call_count == 1
    assert v4.calls.last.request.headers["host"] == "dual.example"


async def test_respx_intercepts_the_default_inner_transport(resolver: FakeResolver) -> None:
    """The production transport stack, with respx patching httpcore below it."""
    async with respx.mock(assert_all_called=True) as mock:
        route = mock.get(host=PUBLIC_V4, path="/cat.png").mock(image(PNG))
        async with ImageFetcher(ImagesConfig(), resolver=resolver) as fetcher:
            assert await fetcher.fetch("https://images.example/cat.png", param=PARAM) == (
                "png",
                PNG,
            )
    request = route.calls.last.request
    assert request.url.host == PUBLIC_V4
    assert request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"


async def test_aclose_closes_the_inner_transport(resolver: FakeResolver) -> None:
    class Inner(httpx.MockTransport):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    inner = Inner(lambda request: image(PNG))
    async with ImageFetcher(ImagesConfig(), resolver=resolver, transport=inner):
        pass
    assert inner.closed


# --- the SSRF matrix ----------------------------------------------------------------------

FORBIDDEN = [
    # IP literals, one per forbidden range.
    ("http://127.0.0.1/x.png", "127.0.0.1 is a loopback address"),
    ("http://127.255.255.254/x.png", "loopback"),
    ("http://[::1]/x.png", "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
    ("http://[fe80::1]/x.png", "link-local"),
    ("http://[fe80::1%25eth0]/x.png", "scoped IPv6"),
    ("http://10.0.0.1/x.png", "private"),
    ("http://172.16.0.1/x.png", "private"),
    ("http://172.31.255.255/x.png", "private"),
    ("http://192.168.1.1/x.png", "private"),
    ("http://100.64.0.1/x.png", "carrier-grade NAT"),
    ("http://[fc00::1]/x.png", "unique local"),
    ("http://[fd12:3456::1]/x.png", "unique local"),
    ("http://[fec0::1]/x.png", "site-local"),
    ("http://224.0.0.1/x.png", "multicast"),
    ("http://[ff02::1]/x.png", "multicast"),
    ("http://0.0.0.0/x.png", "unspecified"),
    ("http://[::]/x.png", "unspecified"),
    ("http://255.255.255.255/x.png", "reserved or broadcast"),
    ("http://240.0.0.1/x.png", "reserved or broadcast"),
    ("http://192.0.2.1/x.png", "documentation"),
    ("http://198.18.0.1/x.png", "benchmarking"),
    ("http://[2001:db8::1]/x.png", "documentation"),
    # IPv6 spellings of forbidden IPv4 addresses.
    ("http://[::ffff:127.0.0.1]/x.png", "loopback (embedded IPv4)"),
    ("http://[::ffff:7f00:1]/x.png", "loopback (embedded IPv4)"),
    ("http://[::ffff:169.254.169.254]/x.png", "link-local (cloud metadata) (embedded IPv4)"),
    ("http://[::ffff:10.0.0.1]/x.png", "private (embedded IPv4)"),
    ("http://[::127.0.0.1]/x.png", "IPv4-compatible"),
    ("http://[64:ff9b::7f00:1]/x.png", "loopback (embedded IPv4)"),  # NAT64
    ("http://[64:ff9b::a9fe:a9fe]/x.png", "link-local (cloud metadata) (embedded IPv4)"),
    ("http://[64:ff9b:1::a00:1]/x.png", "local-use NAT64"),
    ("http://[2002:7f00:1::1]/x.png", "loopback (6to4)"),
    ("http://[2002:a9fe:a9fe::1]/x.png", "link-local (cloud metadata) (6to4)"),
    ("http://[2001::1]/x.png", "IETF protocol assignment"),  # Teredo
    # What C resolvers (and browsers) read as 127.0.0.1 or 0.0.0.0.
    ("http://2130706433/x.png", "2130706433 is a loopback address"),
    ("http://0x7f000001/x.png", "loopback"),
    ("http://0x7f.1/x.png", "loopback"),
    ("http://127.1/x.png", "loopback"),
    ("http://017700000001/x.png", "loopback"),
    ("http://127.0.0.1./x.png", "loopback"),
    ("http://0/x.png", "unspecified"),
    ("https://0251.0376.0251.0376/latest/", "not a valid URL"),  # httpx refuses octal quads
    ("http://1.2.3.4.5/x.png", "not a valid IPv4 address"),
    ("http://1.2.3.com.99/x.png", "not a valid IPv4 address"),
    ("http://%31%32%37.0.0.1/x.png", "not a valid IPv4 address"),
    ("http://127.0.0.%31/x.png", "not a valid host name"),
    # Names that resolve to forbidden addresses.
    ("http://internal.example/x.png", "'internal.example' does not resolve to a public address"),
    ("https://metadata.example/latest/", "does not resolve to a public address"),
    ("https://mixed.example/x.png", "does not resolve to a public address"),
    ("https://mixed6.example/x.png", "does not resolve to a public address"),
    ("https://mapped.example/x.png", "does not resolve to a public address"),
    ("https://nat64.example/x.png", "does not resolve to a public address"),
    ("https://ula.example/x.png", "does not resolve to a public address"),
    ("https://cgnat.example/x.png", "does not resolve to a public address"),
    ("https://scoped.example/x.png", "does not resolve to a public address"),
    ("http://localhost/x.png", "does not resolve to a public address"),
    ("http://LOCALHOST./x.png", "does not resolve to a public address"),
    ("https://garbage.example/x.png", "does not resolve to a public address"),
]


@pytest.mark.parametrize(("url", "message"), FORBIDDEN, ids=[url for url, _ in FORBIDDEN])
async def test_forbidden_destinations_are_refused(
    make: Factory, router: respx.MockRouter, url: str, message: str
) -> None:
    anything = router.route().mock(image(PNG))
    assert message in await refused(make(), url)
    assert not anything.called


async def test_resolved_private_address_is_logged_but_not_told_to_the_client(
    make: Factory, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.images.guard")
    message = await refused(make(), "https://internal.example/x.png")
    assert "10.0.0.5" not in message
    assert "internal.example" in caplog.text
    assert "10.0.0.5" in caplog.text


FORBIDDEN_REDIRECTS = [
    ("http://10.0.0.1/x.png", "10.0.0.1 is a private address"),
    ("http://internal.example/x.png", "does not resolve to a public address"),
    ("//metadata.example/latest/", "does not resolve to a public address"),
    ("http://[::ffff:169.254.169.254]/latest/", "(embedded IPv4)"),
    ("http://2130706433/", "loopback"),
    ("file:///etc/passwd", "redirected to a URL with scheme 'file'"),
    ("gopher://images.example/_x", "redirected to a URL with scheme 'gopher'"),
    ("ftp://images.example/x.png", "redirected to a URL with scheme 'ftp'"),
    ("data:image/png;base64,iVBORw0KGgo=", "redirected to a URL with scheme 'data'"),
    ("https://user:pw@images.example/x.png", "redirected to a URL with a user name"),
    ("http://[::1", "redirected to an invalid URL"),
]


@pytest.mark.parametrize(
    ("location", "message"), FORBIDDEN_REDIRECTS, ids=[loc for loc, _ in FORBIDDEN_REDIRECTS]
)
async def test_redirects_to_forbidden_destinations_are_refused(
    make: Factory, router: respx.MockRouter, location: str, message: str
) -> None:
    start = router.get(host=PUBLIC_V4, path="/start").respond(302, headers={"location": location})
    anything = router.route().mock(image(PNG))
    assert message in await refused(make(), "https://images.example/start")
    assert start.call_count == 1
    assert not anything.called


def chain(router: respx.MockRouter, hops: int) -> None:
    """/r0 redirects to /r1 ... up to /r{hops}, which is the image."""
    for hop in range(hops):
        router.get(host=PUBLIC_V4, path=f"/r{hop}").respond(
            307, headers={"location": f"/r{hop + 1}"}
        )
    router.get(host=PUBLIC_V4, path=f"/r{hops}").mock(image(PNG))


async def test_follows_up_to_the_redirect_limit(make: Factory, router: respx.MockRouter) -> None:
    chain(router, MAX_REDIRECTS)
    assert await make().fetch("https://images.example/r0", param=PARAM) == ("png", PNG)
    assert len(router.calls) == MAX_REDIRECTS + 1


async def test_too_many_redirects(make: Factory, router: respx.MockRouter) -> None:
    chain(router, MAX_REDIRECTS + 1)
    message = await refused(make(), "https://images.example/r0")
    assert f"redirected more than {MAX_REDIRECTS} times" in message
    assert len(router.calls) == MAX_REDIRECTS + 1


async def test_redirect_to_another_host_is_resolved_and_pinned_again(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver
) -> None:
    router.get(host=PUBLIC_V4, path="/a/start").respond(
        301, headers={"location": "https://cdn.example/b/cat.png?sig=1"}
    )
    final = router.get(host=PUBLIC_V4_B, path="/b/cat.png").mock(image(GIF, "image/gif"))
    assert await make().fetch("https://images.example/a/start", param=PARAM) == ("gif", GIF)
    request = final.calls.last.request
    assert request.headers["host"] == "cdn.example"
    assert request.extensions["sni_hostname"] == "cdn.example"
    assert resolver.calls == [("images.example", 443), ("cdn.example", 443)]


async def test_relative_redirect(make: Factory, router: respx.MockRouter) -> None:
    router.get(host=PUBLIC_V4, path="/a/b/start").respond(303, headers={"location": "../c.png"})
    router.get(host=PUBLIC_V4, path="/a/c.png").mock(image(PNG))
    assert await make().fetch("https://images.example/a/b/start", param=PARAM) == ("png", PNG)


async def test_redirect_without_location_is_an_error(
    make: Factory, router: respx.MockRouter
) -> None:
    router.get(host=PUBLIC_V4).respond(302)
    assert "answered HTTP 302" in await refused(make(), "https://images.example/x")


# --- URL policy and allowed_hosts -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://images.example/x.png", "scheme 'ftp'; only http and https"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("data:image/png;base64,iVBORw0KGgo=", "scheme 'data'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("images.example/x.png", "scheme '(none)'"),
        ("https://user:pw@images.example/x.png", "user name or password"),
        ("https://:pw@images.example/x.png", "user name or password"),
        ("https://user@images.example/x.png", "user name or password"),
        ("http:///x.png", "without a host"),
        ("https://images.example:99999/x.png", "invalid port"),
        ("http://[::1", "not a valid URL"),
    ],
)
async def test_url_policy(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver, url: str, message: str
) -> None:
    anything = router.route().mock(image(PNG))
    assert message in await refused(make(), url)
    assert not anything.called
    assert resolver.calls == []


async def test_remote_fetching_can_be_disabled(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver
) -> None:
    anything = router.route().mock(image(PNG))
    message = await refused(make(fetch_remote=False), "https://images.example/x.png")
    assert "remote image URLs are disabled" in message
    assert "data URL" in message
    assert not anything.called
    assert resolver.calls == []


ALLOWED_DNS = FakeResolver(
    {
        name: [PUBLIC_V4]
        for name in [
            "img.example.com",
            "a.b.example.com",
            "example.com",
            "evilexample.com",
            "example.com.evil.net",
            "cdn.other.org",
            "xn--bcher-kva.example",
        ]
    }
)


@pytest.mark.parametrize(
    ("allowed", "url", "ok"),
    [
        (["*.example.com"], "https://img.example.com/x", True),
        (["*.example.com"], "https://a.b.example.com/x", True),
        (["*.example.com"], "https://IMG.Example.COM/x", True),
        (["*.example.com"], "https://img.example.com./x", True),
        (["*.example.com"], "https://example.com/x", False),
        (["*.example.com"], "https://evilexample.com/x", False),
        (["*.example.com"], "https://example.com.evil.net/x", False),
        (["example.com"], "https://example.com/x", True),
        (["example.com"], "https://img.example.com/x", False),
        (["EXAMPLE.com."], "https://example.com/x", True),
        (["*.example.com", "cdn.other.org"], "https://cdn.other.org/x", True),
        (["*.example.com", "cdn.other.org"], "https://other.org/x", False),
        (["bücher.example"], "https://xn--bcher-kva.example/x", True),
        (["xn--bcher-kva.example"], "https://bücher.example/x", True),
    ],
)
async def test_allowed_hosts(
    make: Factory, router: respx.MockRouter, allowed: list[str], url: str, ok: bool
) -> None:
    route = router.get(host=PUBLIC_V4).mock(image(PNG))
    fetcher = make(allowed_hosts=allowed, resolver=ALLOWED_DNS)
    if ok:
        assert await fetcher.fetch(url, param=PARAM) == ("png", PNG)
    else:
        assert "is not in this gateway's allowed image hosts" in await refused(fetcher, url)
        assert not route.called


async def test_allowed_hosts_are_checked_again_after_a_redirect(
    make: Factory, router: respx.MockRouter, resolver: FakeResolver
) -> None:
    router.get(host=PUBLIC_V4).respond(302, headers={"location": "https://cdn.example/x.png"})
    cdn = router.get(host=PUBLIC_V4_B).mock(image(PNG))
    message = await refused(make(allowed_hosts=["images.example"]), "https://images.example/x")
    assert "'cdn.example' is not in this gateway's allowed image hosts" in message
    assert not cdn.called
    assert resolver.calls == [("images.example", 443)]


async def test_allowed_hosts_do_not_bypass_the_address_check(
    make: Factory, router: respx.MockRouter
) -> None:
    anything = router.route().mock(image(PNG))
    fetcher = make(allowed_hosts=["internal.example", "127.0.0.1"])
    assert "not resolve to a public address" in await refused(fetcher, "https://internal.example/x")
    assert "loopback" in await refused(fetcher, "https://127.0.0.1/x")
    assert not anything.called


@pytest.mark.parametrize(
    "entry", ["*", "", "*.", "http://example.com", "example.com:443", "*.*.example.com", "a b"]
)
def test_malformed_allowed_hosts_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match=r"images\.allowed_hosts"):
        ImageFetcher(
            ImagesConfig(allowed_hosts=[entry]),
            transport=httpx.MockTransport(lambda request: image(PNG)),
        )


# --- size, type and status ----------------------------------------------------------------


async def test_declared_size_over_the_cap_is_refused_before_reading(
    make: Factory, router: respx.MockRouter
) -> None:
    body = Body([PNG + bytes(80)])
    router.get(host=PUBLIC_V4).mock(
        httpx.Response(
            200, headers={"content-type": "image/png", "content-length": "101"}, stream=body
        )
    )
    message = await refused(make(max_bytes=100), "https://images.example/x.png")
    assert "is 101 bytes, over the 100-byte limit" in message
    assert body.sent == 0
    assert body.closed


async def test_streamed_body_over_the_cap_is_cut_off(
    make: Factory, router: respx.MockRouter
) -> None:
    body = Body([PNG + bytes(9)] + [bytes(40)] * 10)  # 40 bytes per chunk, no length
    router.get(host=PUBLIC_V4).mock(
        httpx.Response(200, headers={"content-type": "image/png"}, stream=body)
    )
    message = await refused(make(max_bytes=100), "https://images.example/x.png")
    assert "over the 100-byte limit" in message
    assert body.sent == 3  # 120 bytes: the first chunk past the cap, and no more
    assert body.closed


async def test_body_exactly_at_the_cap_is_accepted(make: Factory, router: respx.MockRouter) -> None:
    content = PNG + bytes(100 - len(PNG))
    router.get(host=PUBLIC_V4).mock(
        httpx.Response(
            200, headers={"content-type": "image/png"}, stream=Body([content[:50], content[50:]])
        )
    )
    assert await make(max_bytes=100).fetch("https://images.example/x", param=PARAM) == (
        "png",
        content,
    )


@pytest.mark.parametrize(
    ("content_type", "content", "outcome"),
    [
        ("IMAGE/PNG; charset=binary", PNG, "png"),
        ("image/png", JPEG, "jpeg"),  # the bytes win over the label
        ("image/webp", GIF, "gif"),
        ("text/html; charset=utf-8", PNG, "sent content type 'text/html; charset=utf-8'"),
        ("image/svg+xml", b"<svg/>", "sent content type 'image/svg+xml'"),
        ("application/octet-stream", PNG, "sent content type 'application/octet-stream'"),
        ("", PNG, "sent content type '(none)'"),
        ("image/png", b"<html>Not found</html>", "is not a PNG, JPEG, GIF or WebP image"),
        ("image/png", b"", "is not a PNG, JPEG, GIF or WebP image"),
    ],
)
async def test_content_type_and_bytes(
    make: Factory, router: respx.MockRouter, content_type: str, content: bytes, outcome: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    router.get(host=PUBLIC_V4).mock(httpx.Response(200, headers=headers, content=content))
    fetcher = make()
    if outcome in ("png", "jpeg", "gif", "webp"):
        assert await fetcher.fetch("https://images.example/x", param=PARAM) == (outcome, content)
    else:
        assert outcome in await refused(fetcher, "https://images.example/x")


async def test_content_encoded_bodies_are_refused(make: Factory, router: respx.MockRouter) -> None:
    body = Body([b"\x1f\x8b\x08 compressed"])
    headers = {"content-type": "image/png", "content-encoding": "gzip"}
    router.get(host=PUBLIC_V4).mock(httpx.Response(200, headers=headers, stream=body))
    assert "'gzip'-encoded body" in await refused(make(), "https://images.example/x.png")
    assert body.sent == 0


@pytest.mark.parametrize("status", [404, 403, 500, 503, 304])
async def test_non_success_status(make: Factory, router: respx.MockRouter, status: int) -> None:
    router.get(host=PUBLIC_V4).respond(status, headers={"content-type": "image/png"}, content=PNG)
    message = await refused(make(), "https://images.example/x.png")
    assert message == f"image host 'images.example' answered HTTP {status}"


# --- time and transport failures --------------------------------------------------------


async def _hang(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(30)
    raise AssertionError("not reached")


async def test_slow_server_times_out(make: Factory, router: respx.MockRouter) -> None:
    router.get(host=PUBLIC_V4).mock(side_effect=_hang)
    message = await refused(make(timeout_s=0.05), "https://images.example/x.png")
    assert message == "fetching the image from 'images.example' timed out after 0.05s"


async def test_slow_body_times_out(make: Factory, router: respx.MockRouter) -> None:
    body = Body([PNG, bytes(10)], stall_after=1)
    router.get(host=PUBLIC_V4).mock(
        httpx.Response(200, headers={"content-type": "image/png"}, stream=body)
    )
    assert "timed out" in await refused(make(timeout_s=0.05), "https://images.example/x.png")
    assert body.closed


async def test_slow_dns_times_out(make: Factory) -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return [PUBLIC_V4]

    assert "timed out" in await refused(make(resolver=slow, timeout_s=0.05), "https://a.example/")


async def test_timeout_covers_the_whole_redirect_chain(
    make: Factory, router: respx.MockRouter
) -> None:
    async def slow_redirect(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.04)
        return httpx.Response(302, headers={"location": "/again"})

    router.get(host=PUBLIC_V4).mock(side_effect=slow_redirect)
    # Each hop is within the budget, the chain is not.
    message = await refused(make(timeout_s=0.1), "https://images.example/x")
    assert "timed out after 0.1s" in message


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ReadTimeout("slow"), "timed out after 10s"),
        (httpx.ConnectTimeout("slow"), "timed out after 10s"),
        (httpx.ConnectError("refused"), "could not connect to image host 'images.example'"),
        (httpx.RemoteProtocolError("bad"), "failed (RemoteProtocolError)"),
        (httpx.ReadError("reset"), "failed (ReadError)"),
    ],
)
async def test_transport_errors(
    make: Factory, router: respx.MockRouter, error: Exception, message: str
) -> None:
    router.get(host=PUBLIC_V4).mock(side_effect=error)
    assert message in await refused(make(), "https://images.example/x.png")


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("unknown.example", "'unknown.example' does not resolve to a public address"),
        ("empty.example", "'empty.example' does not resolve to a public address"),
        ("internal.example", "'internal.example' does not resolve to a public address"),
    ],
)
async def test_unresolvable_hosts(make: Factory, host: str, message: str) -> None:
    # Issue 19, item 14: the same answer as for a name that resolves to a private address,
    # so that a caller cannot tell which internal DNS names exist.
    assert (await refused(make(), f"https://{host}/x.png")).endswith(
        message + "; the gateway only fetches images from public addresses"
    )


async def test_default_resolver_is_the_event_loops_getaddrinfo(
    monkeypatch: pytest.MonkeyPatch, router: respx.MockRouter
) -> None:
    seen: list[tuple[str, int, int]] = []

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        seen.append((host, port, kwargs["type"]))
        if host != "images.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        tcp = (socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        return [
            (socket.AF_INET6, *tcp, (PUBLIC_V6, port, 0, 0)),
            (socket.AF_INET, *tcp, (PUBLIC_V4, port)),
            (socket.AF_INET, *tcp, (PUBLIC_V4, port)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    assert await system_resolver("images.example", 443) == [PUBLIC_V6, PUBLIC_V4]

    route = router.get(host=PUBLIC_V6).mock(image(PNG))
    async with ImageFetcher(
        ImagesConfig(), transport=httpx.MockTransport(router.async_handler)
    ) as f:
        assert await f.fetch("https://images.example/x.png", param=PARAM) == ("png", PNG)
        assert "does not resolve to a public address" in await refused(
            f, "https://nowhere.example/x.png"
        )
    assert route.called
    assert seen[-1] == ("nowhere.example", 443, socket.SOCK_STREAM)


# --- secrets in URLs ----------------------------------------------------------------------

SECRET = "s3cr3t-signature"


@pytest.mark.parametrize(
    ("url", "setup"),
    [
        (f"https://images.example/404?X-Amz-Signature={SECRET}", "404"),
        (f"https://images.example/big?token={SECRET}", "big"),
        (f"https://images.example/html?token={SECRET}", "html"),
        (f"https://images.example/slow?token={SECRET}", "slow"),
        (f"https://images.example/redirect?token={SECRET}", "redirect"),
        (f"https://internal.example/x?token={SECRET}", ""),
        (f"https://10.0.0.1/x?token={SECRET}", ""),
        (f"https://unknown.example/x?token={SECRET}", ""),
        (f"ftp://images.example/x?token={SECRET}", ""),
        (f"https://user:{SECRET}@images.example/x", ""),
        (f"https://images.example:99999/x?token={SECRET}", ""),
    ],
)
async def test_errors_and_logs_never_carry_the_url_query_or_credentials(
    make: Factory,
    router: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    url: str,
    setup: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    router.get(host=PUBLIC_V4, path="/404").respond(404)
    router.get(host=PUBLIC_V4, path="/big").mock(image(PNG + bytes(200)))
    router.get(host=PUBLIC_V4, path="/html").mock(image(b"<html></html>"))
    router.get(host=PUBLIC_V4, path="/slow").mock(side_effect=_hang)
    router.get(host=PUBLIC_V4, path="/redirect").respond(
        302, headers={"location": f"http://10.0.0.1/x?token={SECRET}"}
    )
    with pytest.raises(InvalidRequestError) as info:
        await make(max_bytes=100, timeout_s=0.05).fetch(url, param=PARAM)
    assert SECRET not in info.value.message
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None
    assert SECRET not in caplog.text


# --- the address policy on its own ------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        PUBLIC_V4,
        "1.1.1.1",
        "100.63.255.255",  # just below carrier-grade NAT
        "100.128.0.0",  # just above
        "172.15.255.255",
        "172.32.0.0",
        "2606:4700:4700::1111",
        PUBLIC_V6,
        "::ffff:8.8.8.8",  # mapped public
        "64:ff9b::808:808",  # NAT64 of a public address (DNS64 networks)
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    [
        "0.1.2.3",
        "127.0.0.1",
        "169.254.169.254",
        "10.255.255.255",
        "192.168.0.1",
        "100.64.0.0",
        "100.127.255.255",
        "192.0.0.8",
        "192.88.99.1",
        "203.0.113.9",
        "239.255.255.250",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:0.0.0.0",
        "::ffff:192.168.0.1",
        "64:ff9b::a00:1",
        "2002:c0a8:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "3fff::1",
        "fd00:ec2::254",  # the IPv6 EC2 metadata address
        "fe80::a9fe:a9fe",
        "ff05::2",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("93.184.215.14", "93.184.215.14"),
        ("1572394766", "93.184.215.14"),
        ("0x5db8d70e", "93.184.215.14"),
        ("0x5d.0xb8.0xd7.0x0e", "93.184.215.14"),
        ("0135.0270.0327.016", "93.184.215.14"),
        ("93.12113678", "93.184.215.14"),
        ("93.184.55054", "93.184.215.14"),
        ("93.184.215.14.", "93.184.215.14"),
        ("0x", "0.0.0.0"),
        ("2606:4700::1111", "2606:4700::1111"),
        ("images.example", None),
        ("1.2.3.example", None),
        ("xn--bcher-kva.de", None),
    ],
)
def test_parse_ip_host(host: str, expected: str | None) -> None:
    parsed = parse_ip_host(host)
    assert (None if parsed is None else str(parsed)) == expected


@pytest.mark.parametrize(
    "host",
    [
        "256.1.1.1",
        "1.2.3.4.5",
        "1.2.3.256",
        "1.16777216",
        "08.0.0.1",
        "0xg.1",
        "1..2",
        "a.1",
        "::1::",
    ],
)
def test_parse_ip_host_rejects_malformed_numbers(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        parse_ip_host(host)
