"""Streaming chat completions through the whole path, as OpenAI clients consume them.

The same scripted answer is requested with and without `stream: true`: what the SDK
accumulates from the chunks must equal the non-streaming completion.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.emulator.eventstream import event_frame
from tests.fullpath.conftest import API_KEY, GatewayFactory, RunningGateway, ledger, script

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def sse_events(gateway: RunningGateway, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """The raw `data:` payloads of a streamed answer, in order."""
    with (
        gateway.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        text = response.read().decode()
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        events.append(block.removeprefix("data: "))
    return response, events


def test_transport_headers_and_framing(gateway: RunningGateway) -> None:
    response, events = sse_events(
        gateway,
        {"model": "nova-micro", "messages": user("one two three"), "stream": True},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["x-gateway-model"] == "amazon.nova-micro-v1:0"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"nova-micro"}
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["content"] == ""
    finishes = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]
    ]
    assert finishes == ["stop"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "You said: one two three"
    assert all("usage" not in c or c["usage"] is None for c in chunks)


def _final(gateway: RunningGateway, **kwargs: Any) -> tuple[Any, Any]:
    client = gateway.client()
    plain = client.chat.completions.create(**kwargs)
    with client.chat.completions.stream(**kwargs, stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        streamed = stream.get_final_completion()
    return plain, streamed


@pytest.mark.parametrize(
    "directive",
    [
        {"reply": "The weather is fine today.", "chunks": 4},
        {"tool_calls": [{"name": "get_weather", "input": {"city": "Paris"}}]},
        {
            "reply": "Checking both.",
            "tool_calls": [
                {"name": "get_weather", "input": {"city": "Oslo"}},
                {"name": "get_time", "input": {"city": "Lima"}},
            ],
        },
        {
            "usage": {
                "inputTokens": 7,
                "outputTokens": 9,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 5,
            }
        },
        {"stop_reason": "stop_sequence", "reply": "cut"},
    ],
    ids=["text", "tool-first-block", "text-then-two-tools", "cache-usage", "stop-sequence"],
)
def test_stream_accumulates_to_the_non_streaming_answer(
    gateway: RunningGateway, directive: dict[str, Any]
) -> None:
    plain, streamed = _final(
        gateway,
        model="claude-3-5-sonnet",
        messages=user(script("Weather?", **directive)),
        tools=TOOLS,
    )
    # The first delta carries `content: ""` (as OpenAI's text streams do), so a tool-only
    # answer accumulates to "" where the non-streaming message has null.
    assert (streamed.choices[0].message.content or None) == plain.choices[0].message.content
    assert streamed.choices[0].finish_reason == plain.choices[0].finish_reason
    plain_calls = [
        (c.id, c.function.name, json.loads(c.function.arguments))
        for c in plain.choices[0].message.tool_calls or []
    ]
    streamed_calls = [
        (c.id, c.function.name, json.loads(c.function.arguments))
        for c in streamed.choices[0].message.tool_calls or []
    ]
    assert streamed_calls == plain_calls
    assert streamed.usage == plain.usage
    if "tool_calls" in directive:
        assert plain.choices[0].finish_reason == "tool_calls"
        assert len(plain_calls) == len(directive["tool_calls"])


def test_tool_call_indexes_are_our_own_counter(gateway: RunningGateway) -> None:
    directive = {
        "tool_calls": [
            {"name": "get_weather", "input": {"city": "Oslo"}},
            {"name": "get_time", "input": {"city": "Lima"}},
        ]
    }
    _, events = sse_events(
        gateway,
        {
            "model": "nova-micro",
            "messages": user(script(**directive)),
            "tools": TOOLS,
            "stream": True,
        },
    )
    starts = []
    arguments: dict[int, str] = {}
    for event in events[:-1]:
        for call in json.loads(event)["choices"][0]["delta"].get("tool_calls") or []:
            if "id" in call:
                starts.append(
                    (call["index"], call["function"]["name"], call["function"]["arguments"])
                )
            arguments[call["index"]] = arguments.get(call["index"], "") + call["function"].get(
                "arguments", ""
            )
    # The first tool call is the first content block: index 0, never -1.
    assert starts == [(0, "get_weather", ""), (1, "get_time", "")]
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Oslo"},
        1: {"city": "Lima"},
    }


def test_reasoning_streams_as_reasoning_content(gateway: RunningGateway) -> None:
    directive = {
        "reasoning": {"text": "Think it through.", "signature": "c2lnbmF0dXJl"},
        "reply": "Done.",
    }
    _, events = sse_events(
        gateway,
        {"model": "claude-3-5-sonnet", "messages": user(script(**directive)), "stream": True},
    )
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Think it through."
    assert [d["reasoning_signature"] for d in deltas if d.get("reasoning_signature")] == [
        "c2lnbmF0dXJl"
    ]
    assert "".join(d.get("content") or "" for d in deltas) == "Done."


def test_usage_chunk_only_when_asked(gateway: RunningGateway) -> None:
    body: dict[str, Any] = {"model": "nova-micro", "messages": user("hi"), "stream": True}
    _, without = sse_events(gateway, body)
    assert not any(json.loads(e).get("usage") for e in without[:-1])
    _, with_usage = sse_events(gateway, {**body, "stream_options": {"include_usage": True}})
    last = json.loads(with_usage[-2])
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 1 and last["usage"]["completion_tokens"] == 3


def test_errors_before_the_first_byte_are_http_errors(gateway: RunningGateway) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        gateway.client().chat.completions.create(
            model="nova-micro", messages=user(script(error="ThrottlingException")), stream=True
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"]


@pytest.mark.parametrize(
    ("stream_error", "error_type", "code"),
    [
        ("modelStreamErrorException", "server_error", "model_stream_error"),
        ("throttlingException", "rate_limit_error", "rate_limit_exceeded"),
        ("validationException", "invalid_request_error", None),
        ("internalServerException", "server_error", None),
        ("serviceUnavailableException", "server_error", None),
    ],
)
def test_exception_frame_mid_stream_becomes_a_final_error_event(
    gateway: RunningGateway, stream_error: str, error_type: str, code: str | None
) -> None:
    directive = {
        "reply": "one two three four",
        "stream_error": {"type": stream_error, "after_events": 3},
    }
    _, events = sse_events(
        gateway, {"model": "nova-micro", "messages": user(script(**directive)), "stream": True}
    )
    assert "[DONE]" not in events
    final = json.loads(events[-1])
    assert set(final) == {"error"}
    assert final["error"]["type"] == error_type
    if code is not None:
        assert final["error"]["code"] == code
    assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"


def test_mid_stream_error_surfaces_as_an_sdk_error(gateway: RunningGateway) -> None:
    directive = {"reply": "one two three", "stream_error": {"after_events": 2}}
    stream = gateway.client().chat.completions.create(
        model="nova-micro", messages=user(script(**directive)), stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_broken_upstream_connection_becomes_a_final_error_event(gateway: RunningGateway) -> None:
    _, events = sse_events(
        gateway,
        {
            "model": "nova-micro",
            "messages": user(script(reply="a b c d e", disconnect_after=3)),
            "stream": True,
        },
    )
    assert "[DONE]" not in events
    final = json.loads(events[-1])
    assert final["error"]["type"] == "server_error"


def test_deltas_arrive_as_bedrock_sends_them(gateway: RunningGateway) -> None:
    directive = {"reply": "a b c d e f", "chunks": 6, "delay_ms": 150}
    stream = gateway.client().chat.completions.create(
        model="nova-micro", messages=user(script(**directive)), stream=True
    )
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter())
    # Six deltas paced 150 ms apart by the emulator: had the gateway buffered the answer,
    # they would all arrive together.
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] > 0.5


def test_stream_usage_records_match_bedrock(gateway: RunningGateway) -> None:
    client = gateway.client()
    usage = {
        "inputTokens": 40,
        "outputTokens": 12,
        "cacheReadInputTokens": 3,
        "cacheWriteInputTokens": 2,
    }
    for _ in client.chat.completions.create(
        model="claude-3-5-sonnet",
        messages=user(script(usage=usage, first_token_delay_ms=30)),
        stream=True,
        user="end-user-7",
    ):
        pass
    (record,) = ledger(gateway)
    assert record["stream"] == 1 and record["status"] == 200
    assert (record["input_tokens"], record["output_tokens"]) == (40, 12)
    assert (record["cache_read_tokens"], record["cache_write_tokens"]) == (3, 2)
    assert record["estimated"] == 0 and record["error_type"] is None
    assert record["end_user"] == "end-user-7" and record["key_id"] == "app1"
    assert record["ttft_ms"] is not None and record["ttft_ms"] >= 30
    assert record["latency_ms"] >= record["ttft_ms"]


def test_mid_stream_error_records_usage_seen_so_far(gateway: RunningGateway) -> None:
    directive = {
        "reply": "one two three four five six seven eight",
        "stream_error": {"after_events": 4},
    }
    _, _events = sse_events(
        gateway, {"model": "nova-micro", "messages": user(script(**directive)), "stream": True}
    )
    (record,) = ledger(gateway)
    assert record["error_type"] == "ModelStreamErrorException"
    assert record["estimated"] == 1  # the metadata event never came
    assert record["output_tokens"] >= 1


@pytest.fixture
def goes_silent() -> Iterator[str]:
    """A Bedrock that starts a stream (messageStart, one text delta) and then says nothing."""
    frames = event_frame("messageStart", b'{"role":"assistant"}') + event_frame(
        "contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hello"}}'
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)  # so the loop sees `stop` (closing does not wake accept)
    connections: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                connections.append(conn)
                conn.recv(65536)  # the signed request; its content does not matter here
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                    + f"{len(frames):x}\r\n".encode()
                    + frames
                    + b"\r\n"
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()
    for conn in connections:
        conn.close()


def test_a_stream_silent_past_the_read_timeout_ends_with_an_error_event(
    start_gateway: GatewayFactory, goes_silent: str
) -> None:
    gateway = start_gateway(
        bedrock={
            "region": "us-east-1",
            "endpoint_url": goes_silent,
            "read_timeout_s": 0.5,
            "retries": {"mode": "standard", "max_attempts": 1},
        }
    )
    started = time.perf_counter()
    _, events = sse_events(gateway, {"model": "nova-micro", "messages": user("hi"), "stream": True})
    assert time.perf_counter() - started < 5
    assert "[DONE]" not in events
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert "Hello" in contents  # the stream had started before Bedrock went silent
    final = json.loads(events[-1])["error"]
    assert (final["type"], final["code"]) == ("server_error", "upstream_read_timeout")
    (record,) = ledger(gateway)
    assert (record["status"], record["error_type"], record["estimated"]) == (200, "ReadTimeout", 1)
