"""Remote images cost nothing before admission, and one request cannot fan out without bound.

Issue 19 (3): every URL used to be fetched at once, before rate limits, with siblings left
running after a failure. Full path: the `openai` SDK -> our app over HTTP -> the emulator,
with the image host mocked at the edge we do not own (httpx, behind the SSRF guard).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest
import respx

from gateway.images.fetcher import ImageFetcher
from tests.fullpath.test_features import data_url, image, png_1x1
from tests.harness import API_KEY, GatewayFactory, RunningGateway, ledger, sha


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


def use_image_host(gateway: RunningGateway, router: respx.MockRouter) -> None:
    """Point the gateway's fetcher at a mocked public image host."""
    state = gateway.app.state.gateway
    state.images = ImageFetcher(
        gateway.config.images,
        resolver=_public,
        transport=httpx.MockTransport(router.async_handler),
    )


def ask_with(gateway: RunningGateway, *parts: dict[str, Any]) -> Any:
    with gateway.client() as client:
        return client.chat.completions.create(
            model="claude-3-5-sonnet",
            messages=[{"role": "user", "content": [{"type": "text", "text": "Look"}, *parts]}],
        )


def test_a_request_refused_by_its_rpm_fetches_no_image(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(auth={"keys": [{"id": "app1", "key_sha256": sha(API_KEY), "rpm": 1}]})
    router = respx.MockRouter()
    route = router.get(url__regex=r"https://93\.184\.216\.34/.*").respond(
        200, content=png_1x1(), headers={"content-type": "image/png"}
    )
    use_image_host(gateway, router)
    ask_with(gateway, image("https://images.example.com/a.png"))
    with pytest.raises(openai.RateLimitError):
        ask_with(gateway, image("https://images.example.com/b.png"))
    assert route.call_count == 1  # only the admitted request fetched


def test_more_than_twenty_images_is_400_before_any_call(gateway: RunningGateway) -> None:
    picture = image(data_url("image/png", png_1x1()))
    with pytest.raises(openai.BadRequestError) as info:
        ask_with(gateway, *[picture] * 21)
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "too_many_images"
    assert info.value.body["param"] == "messages"
    ask_with(gateway, *[picture] * 20)  # Bedrock's own limit is fine
    rows = ledger(gateway)
    assert [row["status"] for row in rows] == [400, 200]
    assert rows[0]["input_tokens"] == 0


def test_the_first_failed_fetch_cancels_the_others(gateway: RunningGateway) -> None:
    cancelled = 0
    in_flight = 0
    most = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal cancelled, in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        finally:
            in_flight -= 1
        return httpx.Response(200, content=png_1x1(), headers={"content-type": "image/png"})

    async def missing(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.1)
        return httpx.Response(404)

    router = respx.MockRouter()
    router.get(url__regex=r".*/missing\.png").mock(side_effect=missing)
    router.get(url__regex=r".*/slow-\d+\.png").mock(side_effect=slow)
    use_image_host(gateway, router)
    parts = [image("https://images.example.com/missing.png")]
    parts += [image(f"https://images.example.com/slow-{n}.png") for n in range(11)]
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as info:
        ask_with(gateway, *parts)
    assert time.monotonic() - started < 5  # not the 30 s of the slow ones
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "messages[0].content[1].image_url"
    assert most <= 4  # a few at a time per request (the first of them is the 404)
    assert cancelled >= 1 and in_flight == 0


async def test_the_fetcher_bounds_fetches_across_requests() -> None:
    """The process-wide bound, whatever the number of requests fetching at once."""
    from gateway.config import ImagesConfig

    in_flight = 0
    most = 0

    async def counted(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, content=png_1x1(), headers={"content-type": "image/png"})

    router = respx.MockRouter()
    router.get(url__regex=r".*").mock(side_effect=counted)
    async with ImageFetcher(
        ImagesConfig(),
        resolver=_public,
        transport=httpx.MockTransport(router.async_handler),
        max_concurrent=3,
    ) as fetcher:
        results = await asyncio.gather(
            *(fetcher.fetch(f"https://img.example.com/{n}.png", param="p") for n in range(12))
        )
    assert len(results) == 12 and most == 3
