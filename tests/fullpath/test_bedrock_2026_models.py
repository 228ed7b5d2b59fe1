"""The model options of 2026 through the whole path (OpenAI SDK -> gateway -> aiobotocore 3
-> emulator): service tiers, adaptive thinking, native structured output and strict tools,
and the gateway's requestMetadata. The emulator's `echo` directive replies with what the
gateway sent Bedrock in one field, so each test sees the Converse request itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.fullpath.conftest import GatewayFactory, RunningGateway, ledger, script
from tests.servers import ServerThread

MODELS: list[dict[str, Any]] = [
    {
        "name": "sonnet-tiered",
        "bedrock_id": "us.anthropic.claude-sonnet-4-6",
        "service_tiers": ["default", "flex", "priority"],
        "structured_output": "native",
        "pricing": {
            "input_per_1k": "0.003",
            "output_per_1k": "0.015",
            "tiers": {"flex": {"input_per_1k": "0.0015", "output_per_1k": "0.0075"}},
        },
    },
    {
        "name": "opus-adaptive",
        "bedrock_id": "global.anthropic.claude-opus-4-7",
        "reasoning": {"supported": True, "mode": "adaptive"},
        "pricing": {"input_per_1k": "0.005", "output_per_1k": "0.025"},
    },
    {
        "name": "sonnet-budget",
        "bedrock_id": "anthropic.claude-sonnet-4-20250514-v1:0",
        "reasoning": {"supported": True},
        "pricing": {"input_per_1k": "0.003", "output_per_1k": "0.015"},
    },
]


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> RunningGateway:
    return start_gateway(models=MODELS)


def _echo(gateway: RunningGateway, field: str, model: str, **kwargs: Any) -> Any:
    with gateway.client() as client:
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": script("Q", echo=field)}], **kwargs
        )
    return json.loads(answer.choices[0].message.content or "null"), answer


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as opened:
        yield opened


# -- service tiers ---------------------------------------------------------------------------


def test_a_flex_request_is_sent_answered_recorded_and_priced_as_flex(
    gateway: RunningGateway,
) -> None:
    sent, answer = _echo(gateway, "serviceTier", "sonnet-tiered", service_tier="flex")
    assert sent == {"type": "flex"}
    assert answer.service_tier == "flex"
    usage = answer.usage
    assert usage is not None
    (record,) = ledger(gateway)
    assert record["service_tier"] == "flex"
    expected = (
        Decimal(usage.prompt_tokens) * Decimal("0.0015")
        + Decimal(usage.completion_tokens) * Decimal("0.0075")
    ) / 1000
    assert Decimal(record["cost_e10"]) / 10**10 == expected


def test_a_streamed_priority_request_records_the_tier(
    gateway: RunningGateway, client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="sonnet-tiered",
            messages=[{"role": "user", "content": script("Q", echo="serviceTier")}],
            service_tier="priority",
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"type": "priority"}
    (record,) = ledger(gateway)
    assert record["service_tier"] == "priority"


def test_a_tier_not_offered_by_this_model_is_refused(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _echo(gateway, "serviceTier", "opus-adaptive", service_tier="flex")
    assert caught.value.body["param"] == "service_tier"  # type: ignore[index]


# -- adaptive thinking -------------------------------------------------------------------------


def test_reasoning_effort_on_an_adaptive_model_is_adaptive_thinking(
    gateway: RunningGateway,
) -> None:
    fields, _ = _echo(
        gateway, "additionalModelRequestFields", "opus-adaptive", reasoning_effort="high"
    )
    assert fields == {"thinking": {"type": "adaptive"}}
    output, _ = _echo(gateway, "outputConfig", "opus-adaptive", reasoning_effort="high")
    assert output == {"effort": "high"}


def test_a_budget_model_still_gets_a_budget(gateway: RunningGateway) -> None:
    fields, _ = _echo(
        gateway, "additionalModelRequestFields", "sonnet-budget", reasoning_effort="low"
    )
    assert fields == {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def test_a_thinking_budget_sent_to_an_adaptive_model_is_refused(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _echo(
            gateway,
            "outputConfig",
            "opus-adaptive",
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}},
        )
    assert caught.value.body["param"] == "thinking.type"  # type: ignore[index]


# -- native structured output and strict tools -----------------------------------------------


class City(BaseModel):
    city: str
    country: str
    population: int


@pytest.mark.parametrize("stream", [False, True])
def test_native_structured_output_parses(
    gateway: RunningGateway, client: openai.OpenAI, stream: bool
) -> None:
    messages: Any = [{"role": "user", "content": "Where were the 2024 Olympics held?"}]
    if stream:
        with client.chat.completions.stream(
            model="sonnet-tiered", messages=messages, response_format=City
        ) as events:
            parsed = events.get_final_completion().choices[0].message.parsed
    else:
        completion = client.chat.completions.parse(
            model="sonnet-tiered", messages=messages, response_format=City
        )
        parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City)


def test_native_structured_output_goes_as_output_config(gateway: RunningGateway) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": City.model_json_schema()},
    }
    sent, _ = _echo(gateway, "outputConfig", "sonnet-tiered", response_format=fmt)
    assert sent["textFormat"]["type"] == "json_schema"
    definition = sent["textFormat"]["structure"]["jsonSchema"]
    assert definition["name"] == "City"
    assert json.loads(definition["schema"])["properties"].keys() == {
        "city",
        "country",
        "population",
    }


@pytest.mark.parametrize(("model", "strict"), [("sonnet-tiered", True), ("sonnet-budget", None)])
def test_strict_tools_are_strict_where_the_model_is_native(
    gateway: RunningGateway, model: str, strict: bool | None
) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "strict": True,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }
    sent, _ = _echo(gateway, "toolConfig", model, tools=[tool])
    assert sent["tools"][0]["toolSpec"].get("strict") == strict


# -- the gateway's requestMetadata -------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_request_metadata_attributes_each_call(
    start_gateway: GatewayFactory, emulator: ServerThread, enabled: bool
) -> None:
    bedrock = {"region": "us-east-1", "endpoint_url": emulator.url, "request_metadata": enabled}
    gateway = start_gateway(models=MODELS, bedrock=bedrock)
    sent, _ = _echo(gateway, "requestMetadata", "sonnet-tiered", user="customer-7")
    if enabled:
        assert sent == {
            "key_id": "app1",
            "team": "search",
            "user": "alice",
            "end_user": "customer-7",
        }
    else:
        assert sent == {"user": "customer-7"}
