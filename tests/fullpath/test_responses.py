"""The Responses API through the whole path: the official `openai` SDK -> our app over
HTTP -> real aiobotocore -> the emulator. Answers are scripted with `@emulator` lines."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.fullpath.conftest import (
    API_KEY,
    OTHER_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
)

REASONING_MODEL = {
    "name": "claude-thinking",
    "bedrock_id": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "reasoning": {"supported": True},
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(autouse=True)
def _close_clients(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Close every SDK client a test made, so no pooled socket is left for the GC to warn
    about in a later test."""
    made: list[openai.OpenAI] = []
    original = RunningGateway.client

    def client(self: RunningGateway, key: str = API_KEY, **kwargs: Any) -> openai.OpenAI:
        made.append(original(self, key, **kwargs))
        return made[-1]

    monkeypatch.setattr(RunningGateway, "client", client)
    yield
    for made_client in made:
        made_client.close()


@pytest.fixture
def gateway(start_gateway: GatewayFactory, tmp_path: Any) -> RunningGateway:
    models = base_config("http://unused", tmp_path)["models"]
    return start_gateway(models=[*models, REASONING_MODEL])


def test_string_input_answer_usage_and_headers(gateway: RunningGateway) -> None:
    raw = gateway.client().responses.with_raw_response.create(
        model="claude-3-5-sonnet",
        input=script("Hi", reply="Hello there!", usage={"inputTokens": 11, "outputTokens": 3}),
        instructions="Be brief.",
        tools=[{"type": "web_search"}],
    )
    response = raw.parse()
    assert raw.headers["x-gateway-model"] == "anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert raw.headers["x-gateway-dropped-tools"] == "web_search"
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == "Hello there!"
    assert response.model == "claude-3-5-sonnet"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)
    assert response.usage.total_tokens == 14
    (row,) = ledger(gateway)
    assert (row["route"], row["status"], row["input_tokens"], row["output_tokens"]) == (
        "/v1/responses",
        200,
        11,
        3,
    )
    assert row["model"] == "claude-3-5-sonnet" and row["cost_e10"] is not None


def test_item_input_the_agents_sdk_way(gateway: RunningGateway) -> None:
    response = gateway.client().responses.create(
        model="nova-micro",
        input=[
            {"role": "developer", "content": "Rule one."},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
        user="end-7",
    )
    assert response.output_text == "You said: first second"
    (row,) = ledger(gateway)
    assert row["end_user"] == "end-7"


def test_stream_final_equals_the_non_streamed_response(gateway: RunningGateway) -> None:
    text = script("Hi", reply="One two three four.", usage={"inputTokens": 5, "outputTokens": 4})
    client = gateway.client()
    whole = client.responses.create(model="claude-3-5-sonnet", input=text, store=False)
    with client.responses.stream(model="claude-3-5-sonnet", input=text, store=False) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "One two three four." and len(deltas) == 4

    def comparable(response: Any) -> dict[str, Any]:
        data = response.model_dump()
        for item in data["output"]:
            item["id"] = item["id"].split("_")[-1]
            for part in item.get("content") or ():
                part.pop("parsed", None)  # the SDK's stream accumulator adds it
        return {k: v for k, v in data.items() if k not in ("id", "created_at")}

    assert comparable(final) == comparable(whole)


def test_parse_with_a_pydantic_model(gateway: RunningGateway) -> None:
    class City(BaseModel):
        city: str
        country: str

    answer = {"city": "Paris", "country": "France"}
    parsed = gateway.client().responses.parse(
        model="claude-3-5-sonnet",
        input=script("Where?", tool_calls=[{"name": "City", "input": answer}]),
        text_format=City,
    )
    assert parsed.output_parsed == City(**answer)


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip_single_and_parallel(
    gateway: RunningGateway, stream: bool
) -> None:
    client = gateway.client()
    calls = [
        {"name": "get_weather", "input": {"city": "Paris"}, "id": "tooluse_a"},
        {"name": "get_weather", "input": {"city": "Oslo"}, "id": "tooluse_b"},
    ]
    ask = script("Weather in Paris and Oslo?", tool_calls=calls)
    if stream:
        with client.responses.stream(model="claude-3-5-sonnet", input=ask, tools=[WEATHER]) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model="claude-3-5-sonnet", input=ask, tools=[WEATHER])
    fcs = [item for item in first.output if item.type == "function_call"]
    assert [(fc.call_id, fc.name, json.loads(fc.arguments)) for fc in fcs] == [
        ("tooluse_a", "get_weather", {"city": "Paris"}),
        ("tooluse_b", "get_weather", {"city": "Oslo"}),
    ]
    outputs = [
        {"type": "function_call_output", "call_id": fc.call_id, "output": f"{n} degrees"}
        for n, fc in enumerate(fcs)
    ]
    second = client.responses.create(
        model="claude-3-5-sonnet",
        input=[{"role": "user", "content": "Weather in Paris and Oslo?"}, *fcs, *outputs],
        tools=[WEATHER],
    )
    # The emulator echoes the text of the last user turn: here the two tool results.
    assert second.output_text == "You said: 0 degrees 1 degrees"


def test_namespace_tool_calls_come_back_under_the_clients_names(gateway: RunningGateway) -> None:
    tools = [
        {
            "type": "namespace",
            "name": "agents",
            "description": "Sub-agents",
            "tools": [
                {"type": "function", "name": "close_agent", "parameters": {"type": "object"}}
            ],
        }
    ]
    ask = script(
        "close a1", tool_calls=[{"name": "agents__close_agent", "input": {"target": "a1"}}]
    )
    with gateway.http() as http:
        response = http.post(
            "/v1/responses",
            json={"model": "claude-3-5-sonnet", "input": ask, "tools": tools},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
    (item,) = response.json()["output"]
    assert (item["type"], item["name"], item["namespace"]) == (
        "function_call",
        "close_agent",
        "agents",
    )


def test_reasoning_round_trip_with_encrypted_content_and_store_false(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    reasoning = {"text": "I should look it up.", "signature": "c2lnbmF0dXJl"}
    ask = script(
        "Weather?",
        reasoning=reasoning,
        tool_calls=[{"name": "get_weather", "input": {"city": "Rome"}}],
    )
    first = client.responses.create(
        model="claude-thinking",
        input=ask,
        tools=[WEATHER],
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
    )
    kinds = [item.type for item in first.output]
    assert kinds == ["reasoning", "function_call"]
    rs = first.output[0]
    assert rs.encrypted_content and rs.summary[0].text == "I should look it up."
    fc = first.output[1]
    history = [
        {"role": "user", "content": "Weather?"},
        {
            "type": "reasoning",
            "id": rs.id,
            "summary": [s.model_dump() for s in rs.summary],
            "content": None,
            "encrypted_content": rs.encrypted_content,
        },
        fc.model_dump(),
        {"type": "function_call_output", "call_id": fc.call_id, "output": "sunny"},
    ]
    second = client.responses.create(
        model="claude-thinking",
        input=history,
        tools=[WEATHER],
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content"],
        store=False,
    )
    assert second.output_text == "You said: sunny"
    # Without the reasoning item Bedrock (here its emulator) refuses the tool turn.
    without = [history[0], *history[2:]]
    with pytest.raises(openai.BadRequestError, match="Expected `thinking`"):
        client.responses.create(
            model="claude-thinking", input=without, tools=[WEATHER], reasoning={"effort": "low"}
        )
    # Tampered: a 400 naming the item, before Bedrock is asked.
    history[1]["encrypted_content"] = rs.encrypted_content[:-3] + "AAA"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="claude-thinking", input=history, tools=[WEATHER], reasoning={"effort": "low"}
        )
    assert caught.value.body["param"] == "input[1].encrypted_content"  # type: ignore[index]


def test_reasoning_effort_on_a_plain_model_is_dropped_and_listed(gateway: RunningGateway) -> None:
    raw = gateway.client().responses.with_raw_response.create(
        model="nova-micro", input="hi", reasoning={"effort": "high"}
    )
    assert raw.headers["x-gateway-dropped-params"] == "reasoning"
    assert raw.parse().output_text == "You said: hi"


def test_previous_response_id_retrieve_input_items_and_delete(gateway: RunningGateway) -> None:
    client = gateway.client()
    first = client.responses.create(model="claude-3-5-sonnet", input="My name is Ada.")
    second = client.responses.create(
        model="claude-3-5-sonnet", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    # The emulator's input-token count covers the whole conversation Bedrock received.
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + 3
    assert client.responses.retrieve(first.id).output_text == first.output_text
    items = client.responses.input_items.list(second.id)
    assert [item.content[0].text for item in items.data] == ["What is my name?"]  # type: ignore[union-attr]
    # Another key sees nothing.
    other = gateway.client(OTHER_KEY)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="claude-3-5-sonnet", input="x", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)


def test_store_false_keeps_nothing(gateway: RunningGateway) -> None:
    client = gateway.client()
    response = client.responses.create(model="nova-micro", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    path = gateway.config.usage.store.removeprefix("sqlite:///")
    gateway.server.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM stored_responses").fetchone() == (0,)


def test_errors_unknown_model_bad_parameter_throttling(gateway: RunningGateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="nova-micro", input="hi", truncation="auto")
    assert caught.value.body["param"] == "truncation"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError) as throttled:
        client.responses.create(model="nova-micro", input=script(error="ThrottlingException"))
    assert throttled.value.response.headers["retry-after"]
    statuses = [row["status"] for row in ledger(gateway)]
    assert statuses == [404, 400, 429]


def test_mid_stream_failure_is_an_error_event_then_response_failed(gateway: RunningGateway) -> None:
    ask = script(
        "Hi", reply="one two three", stream_error={"after_events": 2, "type": "throttlingException"}
    )
    with httpx.stream(
        "POST",
        gateway.url + "/v1/responses",
        json={"model": "nova-micro", "input": ask, "stream": True},
        headers={"authorization": f"Bearer {API_KEY}", "accept": "application/json"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    types = [
        json.loads(line[6:])["type"] for line in body.splitlines() if line.startswith("data: ")
    ]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-2:] == ["error", "response.failed"]
    (row,) = ledger(gateway)
    assert row["error_type"] == "throttlingException" or row["error_type"] == "ThrottlingException"


def test_websocket_probe_gets_426_and_plain_get_405(gateway: RunningGateway) -> None:
    """What Codex sends with `supports_websockets`: a real WebSocket handshake."""
    auth = {"authorization": f"Bearer {API_KEY}"}
    handshake = {
        **auth,
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    with gateway.http() as http:
        probe = http.get("/v1/responses", headers=handshake)
        assert probe.status_code == 426, probe.text
        assert probe.json()["error"]["code"] == "websocket_not_supported"
        assert http.get("/v1/responses", headers=auth).status_code == 405


@pytest.mark.parametrize(
    ("stop_reason", "reason"),
    [("max_tokens", "max_output_tokens"), ("guardrail_intervened", "content_filter")],
)
def test_incomplete_responses_say_why(
    gateway: RunningGateway, stop_reason: str, reason: str
) -> None:
    ask = script("Hi", reply="Cut", stop_reason=stop_reason)
    response = gateway.client().responses.create(
        model="nova-micro", input=ask, max_output_tokens=16
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    # Streamed, the last event is `response.incomplete`, as OpenAI sends it (the SDK's
    # `get_final_response()` wants `response.completed` and raises, against OpenAI too).
    with gateway.client().responses.stream(model="nova-micro", input=ask) as stream:
        events = list(stream)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details is not None
    assert events[-1].response.incomplete_details.reason == reason


def test_tool_loop_over_previous_response_id_keeps_reasoning_it_never_showed(
    gateway: RunningGateway,
) -> None:
    """Stored, the conversation keeps the signed reasoning even though the client did not
    include it: Bedrock (thinking on) gets it back before the tool result."""
    client = gateway.client()
    reasoning = {"text": "Use the tool.", "signature": "c2ln"}
    ask = script(
        "Weather?",
        reasoning=reasoning,
        tool_calls=[{"name": "get_weather", "input": {"city": "Oslo"}}],
    )
    first = client.responses.create(
        model="claude-thinking", input=ask, tools=[WEATHER], reasoning={"effort": "low"}
    )
    rs, fc = first.output
    assert rs.type == "reasoning" and rs.encrypted_content is None
    assert fc.type == "function_call"
    second = client.responses.create(
        model="claude-thinking",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "rainy"}],
        tools=[WEATHER],
        reasoning={"effort": "low"},
    )
    assert second.output_text == "You said: rainy"


def test_input_items_pages_and_refuses_bad_queries(gateway: RunningGateway) -> None:
    client = gateway.client()
    items = [{"role": "user", "content": f"part {n}"} for n in range(5)]
    response = client.responses.create(model="nova-micro", input=items)
    page = client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [item.content[0].text for item in page.data] == ["part 0", "part 1"]  # type: ignore[union-attr]
    assert page.has_more
    rest = client.responses.input_items.list(response.id, order="asc", after=page.data[-1].id)
    assert [item.content[0].text for item in rest.data] == ["part 2", "part 3", "part 4"]  # type: ignore[union-attr]
    assert not rest.has_more
    newest = client.responses.input_items.list(response.id, limit=1)
    assert newest.data[0].content[0].text == "part 4"  # type: ignore[union-attr]
    for bad in ({"limit": 0}, {"limit": "x"}, {"order": "up"}, {"after": "nope"}):
        with gateway.http() as http:
            answer = http.get(
                f"/v1/responses/{response.id}/input_items",
                params=bad,
                headers={"authorization": f"Bearer {API_KEY}"},
            )
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == next(iter(bad))


def test_metrics_count_the_route(gateway: RunningGateway) -> None:
    gateway.client().responses.create(model="nova-micro", input="hi")
    with gateway.http() as http:
        text = http.get("/metrics").text
    assert any(
        line.startswith("gateway_requests_total{") and 'route="/v1/responses"' in line
        for line in text.splitlines()
    )


def test_usage_counts_cache_reads_and_writes_as_input(gateway: RunningGateway) -> None:
    usage = {
        "inputTokens": 2,
        "outputTokens": 5,
        "cacheReadInputTokens": 1322,
        "cacheWriteInputTokens": 10,
    }
    response = gateway.client().responses.create(
        model="claude-3-5-sonnet", input=script("Hi", usage=usage)
    )
    assert response.usage is not None
    assert response.usage.input_tokens == 2 + 1322 + 10
    assert response.usage.input_tokens_details.cached_tokens == 1322
    assert response.usage.output_tokens == 5
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.usage.total_tokens == 2 + 1322 + 10 + 5
    (row,) = ledger(gateway)
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        2,
        1322,
        10,
    )


def test_custom_tool_round_trip(gateway: RunningGateway) -> None:
    """A free-form `apply_patch` tool, as OpenAI's own agents declare it."""
    patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch"
    tool = {"type": "custom", "name": "apply_patch", "description": "Apply a patch."}
    client = gateway.client()
    first = client.responses.create(
        model="gpt-4o",
        input=script(
            "Add hello.txt", tool_calls=[{"name": "apply_patch", "input": {"input": patch}}]
        ),
        tools=[tool],  # type: ignore[list-item]
    )
    (call,) = first.output
    assert call.type == "custom_tool_call" and call.input == patch
    second = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "Add hello.txt"},
            call.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"},
        ],
        tools=[tool],  # type: ignore[list-item]
    )
    assert second.output_text == "You said: Done!"
