"""Beyond plain text, through the whole path: tools, images, documents, structured output,
reasoning and prompt caching, streaming and not.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import httpx
import openai
import pytest
import respx
from pydantic import BaseModel

from gateway.images.fetcher import ImageFetcher
from tests.fullpath.conftest import GatewayFactory, RunningGateway, script

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def png_1x1() -> bytes:
    """A real 1x1 PNG, built here so the test needs no binary fixture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 6, 0, 0, 0])
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def document(mime: str, data: bytes, filename: str) -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": data_url(mime, data), "filename": filename}}


def ask(gateway: RunningGateway, part: dict[str, Any], text: str = "Describe") -> Any:
    """One user turn of `text` and `part` (an image or a document) to claude-3-5-sonnet."""
    return gateway.client().chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": [{"type": "text", "text": text}, part]}],
    )


# --- tools ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(gateway: RunningGateway, stream: bool) -> None:
    client = gateway.client()
    messages: list[Any] = [
        {
            "role": "user",
            "content": script(
                "Weather in Paris?",
                tool_calls=[
                    {"name": "get_weather", "input": {"city": "Paris"}, "id": "tooluse_abc"}
                ],
            ),
        }
    ]
    if stream:
        with client.chat.completions.stream(
            model="claude-3-5-sonnet", messages=messages, tools=[WEATHER_TOOL]
        ) as events:
            for _ in events:
                pass
            first = events.get_final_completion()
    else:
        first = client.chat.completions.create(
            model="claude-3-5-sonnet", messages=messages, tools=[WEATHER_TOOL]
        )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert (call.id, call.function.name) == ("tooluse_abc", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    # The agent runs the tool and sends the result back: the emulator echoes the result.
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    second = client.chat.completions.create(
        model="claude-3-5-sonnet", messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].message.content == "You said: Sunny, 21 C"
    assert second.choices[0].finish_reason == "stop"


def test_odd_tool_names_are_restored(gateway: RunningGateway) -> None:
    tool = {
        "type": "function",
        "function": {"name": "weather.lookup/v2", "parameters": {"type": "object"}},
    }
    # The emulator answers with whatever name the gateway sent to Bedrock; find it first.
    from gateway.schemas.openai import ChatCompletionRequest
    from gateway.translate.openai_chat.request import openai_to_converse_request

    request = ChatCompletionRequest.model_validate(
        {"model": "x", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    )
    bedrock_name = openai_to_converse_request(request, model_id="m").request["toolConfig"]["tools"][
        0
    ]["toolSpec"]["name"]
    assert bedrock_name != "weather.lookup/v2"
    completion = gateway.client().chat.completions.create(
        model="nova-micro",
        messages=[
            {"role": "user", "content": script(tool_calls=[{"name": bedrock_name, "input": {}}])}
        ],
        tools=[tool],
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "weather.lookup/v2"


# --- images and documents ---------------------------------------------------------------


def test_image_from_a_data_url(gateway: RunningGateway) -> None:
    completion = ask(gateway, image(data_url("image/png", png_1x1())), "What is this?")
    assert completion.choices[0].message.content == "You said: What is this?"


def test_malformed_image_is_400_naming_the_part(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(gateway, image("data:image/png;base64,not*base64"), "What is this?")
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"].startswith("messages[0].content[1]")


def test_image_from_an_https_url(gateway: RunningGateway) -> None:
    picture = png_1x1()
    router = respx.MockRouter(assert_all_called=True)
    # The SSRF guard connects to the address it checked, with the name kept in Host (and SNI).
    route = router.get(
        "https://93.184.216.34/cat.png", headers={"host": "images.example.com"}
    ).respond(200, content=picture, headers={"content-type": "image/png"})

    async def public_resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    state = gateway.app.state.gateway
    state.images = ImageFetcher(
        gateway.config.images,
        resolver=public_resolver,
        transport=httpx.MockTransport(router.async_handler),
    )
    completion = ask(gateway, image("https://images.example.com/cat.png"))
    assert completion.choices[0].message.content == "You said: Describe"
    assert route.call_count == 1


def test_ssrf_guard_refuses_private_addresses(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(gateway, image("http://169.254.169.254/latest/meta-data"))
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "messages[0].content[1].image_url"


def test_remote_images_can_be_disabled(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(images={"fetch_remote": False})
    with pytest.raises(openai.BadRequestError):
        ask(gateway, image("https://images.example.com/a.png"))


def test_pdf_document(gateway: RunningGateway) -> None:
    pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    completion = ask(
        gateway, document("application/pdf", pdf, "Q3 report.pdf"), "Summarise the report"
    )
    assert completion.choices[0].message.content == "You said: Summarise the report"


def test_unsupported_document_type_is_400(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(gateway, document("application/zip", b"PK\x03\x04", "a.zip"), "x")
    assert isinstance(info.value.body, dict) and info.value.body["param"].startswith(
        "messages[0].content[1]"
    )


# --- structured output --------------------------------------------------------------------


class City(BaseModel):
    city: str
    country: str


@pytest.mark.parametrize("stream", [False, True])
def test_structured_output_through_the_sdk_parse_helper(
    gateway: RunningGateway, stream: bool
) -> None:
    directive = script(
        "Where is the Eiffel tower?",
        tool_calls=[{"name": "City", "input": {"city": "Paris", "country": "France"}}],
    )
    messages: Any = [{"role": "user", "content": directive}]
    client = gateway.client()
    if stream:
        with client.chat.completions.stream(
            model="claude-3-5-sonnet", messages=messages, response_format=City
        ) as events:
            for _ in events:
                pass
            completion = events.get_final_completion()
    else:
        completion = client.chat.completions.parse(
            model="claude-3-5-sonnet", messages=messages, response_format=City
        )
    message = completion.choices[0].message
    assert message.parsed == City(city="Paris", country="France")
    assert json.loads(message.content or "") == {"city": "Paris", "country": "France"}
    assert not message.tool_calls
    assert completion.choices[0].finish_reason == "stop"


def test_json_object_mode(gateway: RunningGateway) -> None:
    completion = gateway.client().chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[
            {
                "role": "user",
                "content": script(
                    "JSON please", tool_calls=[{"name": "json_response", "input": {"ok": True}}]
                ),
            }
        ],
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content or "") == {"ok": True}


# --- reasoning ----------------------------------------------------------------------------


def test_reasoning_round_trip(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(
        models=[
            {
                "name": "thinker",
                "bedrock_id": "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "reasoning": {
                    "supported": True,
                    "budgets": {"low": 1024, "medium": 2048, "high": 4096},
                },
            },
            {"name": "plain", "bedrock_id": "amazon.nova-micro-v1:0"},
        ]
    )
    client = gateway.client()
    reasoning = {"text": "The user wants the weather; call the tool.", "signature": "c2lnLTE="}
    first = client.chat.completions.create(
        model="thinker",
        reasoning_effort="low",
        messages=[
            {
                "role": "user",
                "content": script(
                    "Weather?",
                    reasoning=reasoning,
                    tool_calls=[{"name": "get_weather", "input": {"city": "Oslo"}}],
                ),
            }
        ],
        tools=[WEATHER_TOOL],
    )
    message: Any = first.choices[0].message
    assert message.reasoning_content == reasoning["text"]
    assert message.reasoning_signature == reasoning["signature"]
    (call,) = message.tool_calls
    # Multi-turn tool use with thinking: the reasoning goes back with its signature.
    second = client.chat.completions.create(
        model="thinker",
        reasoning_effort="low",
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call.model_dump()],
                "reasoning_content": message.reasoning_content,
                "reasoning_signature": message.reasoning_signature,
            },  # type: ignore[misc]
            {"role": "tool", "tool_call_id": call.id, "content": "Cloudy"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].message.content == "You said: Cloudy"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="plain", reasoning_effort="high", messages=[{"role": "user", "content": "x"}]
        )
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "reasoning_effort"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="thinker",
            reasoning_effort="high",
            temperature=0.2,
            messages=[{"role": "user", "content": "x"}],
        )
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "temperature"


# --- prompt caching -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_cache_usage_numbers(gateway: RunningGateway, stream: bool) -> None:
    usage = {
        "inputTokens": 3,
        "outputTokens": 4,
        "cacheReadInputTokens": 2074,
        "cacheWriteInputTokens": 0,
    }
    messages: Any = [
        {
            "role": "system",
            "content": [
                {
                    "type": "text",
                    "text": "A long, stable system prompt.",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
        {"role": "user", "content": script("Question", usage=usage)},
    ]
    client = gateway.client()
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="claude-3-5-sonnet",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        result_usage = chunks[-1].usage
    else:
        result_usage = client.chat.completions.create(
            model="claude-3-5-sonnet", messages=messages
        ).usage
    assert result_usage is not None
    assert result_usage.prompt_tokens == 3 + 2074
    assert result_usage.prompt_tokens_details is not None
    assert result_usage.prompt_tokens_details.cached_tokens == 2074
