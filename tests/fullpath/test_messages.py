"""`/v1/messages` through the whole path: the `anthropic` SDK -> our app over HTTP -> real
aiobotocore -> the emulator's InvokeModel (Claude) or Converse (other models).

Answers are scripted with `@emulator` lines, so each expectation is exact; the ledger is
read back from SQLite after the gateway stopped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.fullpath.conftest import (
    API_KEY,
    RESTRICTED_KEY,
    GatewayFactory,
    RunningGateway,
    ledger,
    script,
)
from tests.fullpath.messages_support import (
    SONNET,
    SONNET_DATED,
    SONNET_ID,
    messages_models,
    new_client,
)
from tests.fullpath.test_reliability import auth, wait_until_counted
from tests.servers import ServerThread

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cfc0f01f0005000201e2b9a4e40000000049454e44ae426082"
    )
).decode()
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> RunningGateway:
    return start_gateway(models=messages_models(emulator.url, tmp_path))


Clients = Callable[..., anthropic.Anthropic]


@pytest.fixture
def sdk() -> Iterator[Clients]:
    """The Anthropic SDK at a gateway; every client made is closed after the test."""
    made: list[anthropic.Anthropic] = []

    def make(gateway: RunningGateway, key: str = API_KEY, **kwargs: Any) -> anthropic.Anthropic:
        made.append(new_client(gateway, key, **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_create_answers_in_anthropic_shape_and_records_usage(
    sdk: Clients, gateway: RunningGateway
) -> None:
    raw = sdk(gateway).messages.with_raw_response.create(
        model=SONNET_DATED,
        max_tokens=100,
        system="Be brief.",
        messages=user(
            script("Hi", reply="Hello there!", usage={"inputTokens": 11, "outputTokens": 3})
        ),
        metadata={"user_id": '{"device_id":"d1","session_id":"s1"}'},
    )
    message = raw.parse()
    assert raw.headers["x-gateway-model"] == SONNET_ID
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_bdrk_")
    assert message.model == SONNET_DATED  # the name the caller sent
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "Hello there!")
    ]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 3)
    assert message.usage.cache_read_input_tokens == 0
    (record,) = ledger(gateway)
    assert record["route"] == "/v1/messages"
    assert (record["model"], record["bedrock_model_id"]) == (SONNET, SONNET_ID)
    assert record["end_user"] == '{"device_id":"d1","session_id":"s1"}'
    assert (record["input_tokens"], record["output_tokens"], record["stream"]) == (11, 3, 0)
    assert record["cost_e10"] == 780_000  # 11 x 0.003/1k + 3 x 0.015/1k = $0.000078
    assert (record["status"], record["key_id"], record["team"]) == (200, "app1", "search")


def test_stream_final_message_equals_the_non_streamed_one(
    sdk: Clients, gateway: RunningGateway
) -> None:
    client = sdk(gateway)
    directive = {
        "reasoning": {"text": "Think first.", "signature": "c2lnbmF0dXJl"},
        "reply": "Calling the tool.",
        "tool_calls": [{"name": "Bash", "input": {"command": "ls -la"}, "id": "tooluse_fixed01"}],
        "usage": {"inputTokens": 40, "outputTokens": 12, "cacheReadInputTokens": 7},
    }
    kwargs: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [BASH],
        "messages": user(script("List files", **directive)),
    }
    created = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.model_dump() == created.model_dump()
    assert events[0] == "message_start"
    assert {"thinking", "signature", "input_json", "text"} <= set(events)
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature == "c2lnbmF0dXJl"  # type: ignore[union-attr]
    assert final.content[2].input == {"command": "ls -la"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    records = ledger(gateway)
    assert [r["stream"] for r in records] == [0, 1]
    assert all(
        (r["input_tokens"], r["output_tokens"], r["cache_read_tokens"]) == (40, 12, 7)
        for r in records
    )
    assert records[1]["ttft_ms"] is not None and records[1]["estimated"] == 0


def test_tool_results_and_signed_thinking_go_back_to_bedrock(
    sdk: Clients, gateway: RunningGateway
) -> None:
    client = sdk(gateway)
    first = client.messages.create(
        model=SONNET,
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[BASH],
        messages=user(
            script(
                "List files",
                reasoning=[
                    {"text": "Run ls.", "signature": "U2lnMQ=="},
                    {"redacted": "UmVkYWN0ZWQ="},
                ],
                tool_calls=[{"name": "Bash", "input": {"command": "ls"}}],
            )
        ),
    )
    tool_use = next(b for b in first.content if b.type == "tool_use")
    history: list[Any] = [
        {"role": "user", "content": "List files"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use.id,
                    "content": "a.txt b.txt",
                    "is_error": False,
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                }
            ],
        },
    ]
    second = client.messages.create(
        model=SONNET,
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[BASH],
        messages=history,
    )
    # The emulator echoes the tool result's text: it reached Bedrock as a tool result.
    assert second.content[-1].text == "You said: a.txt b.txt"  # type: ignore[union-attr]
    assert [b.type for b in first.content] == ["thinking", "redacted_thinking", "tool_use"]


def test_cache_control_with_ttl_and_cache_usage(sdk: Clients, gateway: RunningGateway) -> None:
    usage = {
        "inputTokens": 20,
        "outputTokens": 5,
        "cacheWriteInputTokens": 3000,
        "cacheReadInputTokens": 0,
    }
    message = sdk(gateway).messages.create(
        model=SONNET,
        max_tokens=100,
        system=[
            {
                "type": "text",
                "text": "Long rules.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": script("Hi", usage=usage),
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            }
        ],
    )
    assert message.usage.cache_creation_input_tokens == 3000
    (record,) = ledger(gateway)
    assert (record["cache_write_tokens"], record["cache_read_tokens"]) == (3000, 0)
    # 20 x 0.003 + 5 x 0.015 + 3000 x 0.00375, per 1k tokens
    assert record["cost_e10"] == 113_850_000


def test_an_image_reaches_claude_and_a_converse_model(
    sdk: Clients, gateway: RunningGateway
) -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"},
    ]
    for model in (SONNET, "nova-micro"):
        message = sdk(gateway).messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": content}]
        )
        assert message.content[0].text == "You said: What is this?"  # type: ignore[union-attr]


def test_a_converse_model_streams_the_same_as_it_answers(
    sdk: Clients, gateway: RunningGateway
) -> None:
    client = sdk(gateway)
    kwargs: dict[str, Any] = {
        "model": "nova-micro",
        "max_tokens": 100,
        "tools": [BASH],
        "messages": user(
            script(
                "x",
                reply="Let me run it.",
                tool_calls=[{"name": "Bash", "input": {"command": "pwd"}, "id": "tooluse_a"}],
            )
        ),
    }
    created = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in created.content]
    assert (final.stop_reason, final.usage) == (created.stop_reason, created.usage)
    records = ledger(gateway)
    assert [(r["route"], r["bedrock_model_id"]) for r in records] == [
        ("/v1/messages", "amazon.nova-micro-v1:0")
    ] * 2


def test_betas_outside_the_list_are_dropped_and_named(
    sdk: Clients, gateway: RunningGateway
) -> None:
    raw = sdk(gateway).beta.messages.with_raw_response.create(
        model=SONNET,
        max_tokens=10,
        messages=user("hi"),
        betas=[
            "claude-code-20250219",
            "interleaved-thinking-2025-05-14",
            "prompt-caching-scope-2026-01-05",
        ],
    )
    assert (
        raw.headers["x-gateway-dropped-betas"]
        == "claude-code-20250219,prompt-caching-scope-2026-01-05"
    )
    assert raw.parse().content[0].text == "You said: hi"  # type: ignore[union-attr]


def test_a_beta_bedrock_does_not_know_fails_if_the_operator_allows_it(
    sdk: Clients, start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> None:
    """Why the list exists: Bedrock answers 400 "invalid beta flag" to an unknown beta."""
    gateway = start_gateway(
        models=messages_models(emulator.url, tmp_path),
        anthropic={"betas": ["claude-code-20250219"]},
    )
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk(gateway).beta.messages.create(
            model=SONNET, max_tokens=10, messages=user("hi"), betas=["claude-code-20250219"]
        )
    assert "invalid beta flag" in info.value.message


def test_count_tokens_counts_with_bedrock_and_bills_nothing(
    sdk: Clients, gateway: RunningGateway
) -> None:
    client = sdk(gateway)
    messages = user("Hello there, how many tokens is this?")
    counted = client.messages.count_tokens(model=SONNET, messages=messages, system="Be brief.")
    answered = client.messages.create(
        model=SONNET, max_tokens=10, messages=messages, system="Be brief."
    )
    assert counted.input_tokens == answered.usage.input_tokens
    raw = client.messages.with_raw_response.count_tokens(model="nova-micro", messages=messages)
    assert raw.headers["x-gateway-token-count"] == "estimated"
    assert raw.parse().input_tokens == 10  # 37 characters, about 4 a token
    with gateway.http() as http:
        metrics = http.get("/metrics").text
    assert 'route="/v1/messages/count_tokens"' in metrics
    records = ledger(gateway)
    assert [r["route"] for r in records] == ["/v1/messages"]  # count_tokens is not billed


def test_count_tokens_checks_the_allow_list(sdk: Clients, gateway: RunningGateway) -> None:
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(gateway, RESTRICTED_KEY).messages.count_tokens(model=SONNET, messages=user("hi"))


def test_bearer_token_and_x_api_key_both_work(sdk: Clients, gateway: RunningGateway) -> None:
    by_key = sdk(gateway).messages.create(model=SONNET, max_tokens=10, messages=user("a"))
    bearer = sdk(gateway, None, auth_token=API_KEY)
    by_token = bearer.messages.create(model=SONNET, max_tokens=10, messages=user("a"))
    assert by_key.content == by_token.content


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return response.status_code, body["error"]["type"]


@pytest.mark.parametrize(
    ("exception", "status", "kind", "call"),
    [
        (anthropic.BadRequestError, 400, "invalid_request_error", {"max_tokens": 0}),
        (anthropic.BadRequestError, 400, "invalid_request_error", {"container": "c"}),
        (anthropic.AuthenticationError, 401, "authentication_error", {"key": "sk-wrong"}),
        (anthropic.PermissionDeniedError, 403, "permission_error", {"key": RESTRICTED_KEY}),
        (anthropic.NotFoundError, 404, "not_found_error", {"model": "claude-nonexistent-9"}),
        (anthropic.RateLimitError, 429, "rate_limit_error", {"error": "ThrottlingException"}),
        (anthropic.InternalServerError, 502, "api_error", {"error": "ModelErrorException"}),
        (
            anthropic.InternalServerError,
            529,
            "overloaded_error",
            {"error": "ServiceUnavailableException"},
        ),
    ],
)
def test_errors_in_anthropic_shape(
    sdk: Clients,
    gateway: RunningGateway,
    exception: type[anthropic.APIStatusError],
    status: int,
    kind: str,
    call: dict[str, Any],
) -> None:
    key = call.pop("key", API_KEY)
    model = call.pop("model", SONNET)
    error = call.pop("error", None)
    text = script("hi", error=error) if error else "hi"
    with pytest.raises(exception) as info:
        sdk(gateway, key).messages.create(
            model=model, max_tokens=call.pop("max_tokens", 10), messages=user(text), **call
        )
    assert _error(info.value.response) == (status, kind)
    if status == 429:
        assert int(info.value.response.headers["retry-after"]) >= 1


def test_request_too_large(
    sdk: Clients, start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> None:
    gateway = start_gateway(
        models=messages_models(emulator.url, tmp_path), server={"max_body_bytes": 2000}
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk(gateway).messages.create(model=SONNET, max_tokens=10, messages=user("x" * 5000))
    assert _error(info.value.response) == (413, "request_too_large")


def test_a_failure_mid_stream_is_an_error_event(sdk: Clients, gateway: RunningGateway) -> None:
    directive = {
        "reply": "one two three four",
        "stream_error": {"type": "throttlingException", "after_events": 3},
    }
    stream = sdk(gateway).messages.stream(
        model=SONNET, max_tokens=50, messages=user(script("x", **directive))
    )
    with pytest.raises(anthropic.APIStatusError) as info, stream as events:
        for _ in events:
            pass
    assert "throttl" in str(info.value).lower()
    (record,) = ledger(gateway)
    assert (record["status"], record["error_type"]) == (200, "ThrottlingException")


def test_unsupported_fields_are_refused_or_dropped(
    sdk: Clients, start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> None:
    gateway = start_gateway(
        models=messages_models(emulator.url, tmp_path), drop_unsupported_params=True
    )
    raw = sdk(gateway).messages.with_raw_response.create(
        model=SONNET,
        max_tokens=10,
        messages=user("hi"),
        service_tier="auto",
        extra_body={"container": "c"},
    )
    assert raw.headers["x-gateway-dropped-params"] == "container,service_tier"


def test_a_team_budget_stops_the_next_call(
    sdk: Clients, start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> None:
    gateway = start_gateway(
        models=messages_models(emulator.url, tmp_path),
        auth=auth({}, teams={"search": {"budget_usd_monthly": "0.01"}}),
    )
    client = sdk(gateway)
    client.messages.create(
        model=SONNET,
        max_tokens=10,
        messages=user(script("x", usage={"inputTokens": 1000, "outputTokens": 1000})),
    )
    wait_until_counted(gateway, 1)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=SONNET, max_tokens=10, messages=user("again"))
    assert _error(info.value.response) == (429, "rate_limit_error")
    assert "Monthly budget reached for team 'search'" in info.value.message


def test_claude_code_request_shape(gateway: RunningGateway) -> None:
    """The main request of Claude Code 2.1 (fixtures/clients), in its shape and size
    (a first turn of about 115 KB)."""
    body = {
        "model": SONNET,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "hello there", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {"role": "system", "content": "Mid-conversation rules."},
        ],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
            {
                "type": "text",
                "text": "You are Claude Code.",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": "Rules " * 19_000, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [BASH] * 1 + [{**BASH, "name": f"Tool{i}"} for i in range(23)],
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "session_id": "a3bc025c"})},
        "max_tokens": 64000,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": True,
    }
    headers = {
        "x-api-key": API_KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
        "thinking-token-count-2026-05-13,context-management-2025-06-27,prompt-caching-scope-2026-01-05,"
        "mid-conversation-system-2026-04-07,effort-2025-11-24",
        "x-app": "cli",
        "X-Claude-Code-Session-Id": "a3bc025c",
        "Accept-Encoding": "gzip, br, zstd",
    }
    with gateway.http() as http:
        # Claude Code's first request; any answer will do, as long as it is one.
        assert http.head("/").status_code < 500
        response = http.post("/v1/messages?beta=true", json=body, headers=headers)
        counted = http.post(
            "/v1/messages/count_tokens?beta=true",
            json={k: body[k] for k in ("model", "messages", "system", "tools")},
            headers=headers,
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-dropped-betas"] == (
        "claude-code-20250219,thinking-token-count-2026-05-13,prompt-caching-scope-2026-01-05,"
        "mid-conversation-system-2026-04-07"
    )
    assert "event: message_stop" in response.text
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 1000
    (record,) = ledger(gateway)
    assert record["end_user"] == body["metadata"]["user_id"]  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_first_token_is_a_timeout_error(
    sdk: Clients,
    start_gateway: GatewayFactory,
    emulator: ServerThread,
    tmp_path: Path,
    stream: bool,
) -> None:
    models = messages_models(emulator.url, tmp_path)
    models[-1] = {**models[-1], "ttft_timeout_s": 0.2}
    gateway = start_gateway(models=models)
    text = script("x", first_token_delay_ms=3000)
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk(gateway).messages.create(
            model=SONNET, max_tokens=10, messages=user(text), stream=stream
        )
    assert _error(info.value.response) == (504, "timeout_error")
    (record,) = ledger(gateway)
    assert (record["status"], record["error_type"]) == (504, "FirstTokenTimeout")


def test_count_tokens_estimates_where_bedrock_cannot_count(
    sdk: Clients, gateway: RunningGateway
) -> None:
    refusal = {
        "type": "ValidationException",
        "message": "The provided model doesn't support counting tokens.",
    }
    raw = sdk(gateway).messages.with_raw_response.count_tokens(
        model=SONNET, messages=user(script("x" * 40, error=refusal))
    )
    assert raw.headers["x-gateway-token-count"] == "estimated"
    assert raw.parse().input_tokens > 10
    other = {"type": "ValidationException", "message": "messages: bad"}
    with pytest.raises(anthropic.BadRequestError):
        sdk(gateway).messages.count_tokens(model=SONNET, messages=user(script("x", error=other)))


def test_models_lists_the_claude_code_names(gateway: RunningGateway) -> None:
    with gateway.http() as http:
        listed = http.get("/v1/models", headers={"x-api-key": API_KEY}).json()
    names = {entry["id"] for entry in listed["data"]}
    assert {SONNET, SONNET_DATED} <= names
