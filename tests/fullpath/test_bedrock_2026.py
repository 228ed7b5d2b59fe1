"""The Converse of 2026 through the whole path: the OpenAI SDK -> the gateway over HTTP ->
aiobotocore 3 -> the emulator, which checks the new fields as Bedrock does.

What the surface's model options decide (tiers accepted, adaptive thinking, native
structured output, the gateway's requestMetadata) is wired by the pipeline; what the
translator decides alone is tested here end to end: 1-hour cache points and their
recorded writes, service tiers a model does not offer, the newer stop reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fullpath.conftest import GatewayFactory, RunningGateway, ledger, script


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as opened:
        yield opened


WRITES = {"inputTokens": 3, "outputTokens": 4, "cacheWriteInputTokens": 1500}


def _cached_system(ttl: str | None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl is not None:
        control["ttl"] = ttl
    return {
        "role": "system",
        "content": [{"type": "text", "text": "A long, stable prompt.", "cache_control": control}],
    }


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("ttl", "retention", "one_hour"),
    [("1h", None, 1500), (None, "24h", 1500), (None, None, 0), ("5m", "24h", 0)],
    ids=["ttl-1h", "retention-24h", "default", "explicit-5m-wins"],
)
def test_one_hour_cache_writes_are_recorded_apart(
    gateway: RunningGateway,
    client: openai.OpenAI,
    stream: bool,
    ttl: str | None,
    retention: str | None,
    one_hour: int,
) -> None:
    extra: dict[str, Any] = {"prompt_cache_retention": retention} if retention else {}
    messages: Any = [_cached_system(ttl), {"role": "user", "content": script("Q", usage=WRITES)}]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="claude-3-5-sonnet",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=extra,
            )
        )
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(
            model="claude-3-5-sonnet", messages=messages, extra_body=extra
        ).usage
    assert usage is not None and usage.prompt_tokens == 3 + 1500
    (record,) = ledger(gateway)
    assert record["cache_write_tokens"] == 1500
    # The emulator reports the writes under the lifetime of the cache point it was sent.
    assert record["cache_write_1h_tokens"] == one_hour


def test_an_unknown_cache_lifetime_is_a_400_naming_it(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    messages: Any = [_cached_system("2h"), {"role": "user", "content": "Q"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude-3-5-sonnet", messages=messages)
    assert caught.value.body["param"] == "messages[0].content[0].cache_control.ttl"  # type: ignore[index]


@pytest.mark.parametrize(("tier", "code"), [("flex", "unsupported_parameter"), ("turbo", None)])
def test_a_tier_the_model_does_not_offer_is_a_400_naming_service_tier(
    gateway: RunningGateway, client: openai.OpenAI, tier: str, code: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude-3-5-sonnet",
            messages=[{"role": "user", "content": "Q"}],
            service_tier=tier,  # type: ignore[arg-type]
        )
    body: Any = caught.value.body
    assert body["param"] == "service_tier"
    assert body["code"] == code
    (record,) = ledger(gateway)
    assert record["status"] == 400 and record["service_tier"] is None


@pytest.mark.parametrize("tier", ["auto", "default"])
def test_auto_and_default_ask_for_nothing(
    gateway: RunningGateway, client: openai.OpenAI, tier: str
) -> None:
    answer = client.chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": script("Q", reply="ok")}],
        service_tier=tier,  # type: ignore[arg-type]
    )
    assert answer.choices[0].message.content == "ok"


@pytest.mark.parametrize("reason", ["malformed_tool_use", "malformed_model_output"])
def test_a_malformed_answer_is_an_error_that_says_so(
    gateway: RunningGateway, client: openai.OpenAI, reason: str
) -> None:
    messages: Any = [{"role": "user", "content": script("Q", stop_reason=reason)}]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="claude-3-5-sonnet", messages=messages)
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == reason and "malformed" in body["message"]


@pytest.mark.parametrize("reason", ["malformed_tool_use", "malformed_model_output"])
def test_a_malformed_streamed_answer_ends_with_an_error(
    gateway: RunningGateway, client: openai.OpenAI, reason: str
) -> None:
    messages: Any = [{"role": "user", "content": script("Q", stop_reason=reason, reply="par")}]
    stream = client.chat.completions.create(
        model="claude-3-5-sonnet", messages=messages, stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "malformed" in caught.value.message


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("reason", "finish"),
    [("model_context_window_exceeded", "length"), ("guardrail_intervened", "content_filter")],
)
def test_newer_stop_reasons_finish_as_openai_clients_expect(
    gateway: RunningGateway, client: openai.OpenAI, stream: bool, reason: str, finish: str
) -> None:
    messages: Any = [{"role": "user", "content": script("Q", stop_reason=reason, reply="a b")}]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="claude-3-5-sonnet", messages=messages, stream=True
            )
        )
        assert chunks[-1].choices[0].finish_reason == finish
    else:
        answer = client.chat.completions.create(model="claude-3-5-sonnet", messages=messages)
        assert answer.choices[0].finish_reason == finish


def test_the_removed_http_client_key_stops_start_up(start_gateway: GatewayFactory) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"bedrock\.http_client was removed"):
        start_gateway(bedrock={"region": "us-east-1", "http_client": "aiohttp"})
