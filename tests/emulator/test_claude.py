"""The emulator's Claude on InvokeModel, its response stream and CountTokens, through real
aiobotocore (signed requests, botocore's event-stream parser)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def body(text: str, **extra: Any) -> bytes:
    payload = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }
    return json.dumps(payload).encode()


def directive(text: str, **script: Any) -> str:
    return f"{text}\n@emulator {json.dumps(script)}"


async def test_invoke_answers_an_anthropic_message(bedrock: Any) -> None:
    response = await bedrock.invoke_model(modelId=CLAUDE, body=body("Hello there"))
    message = json.loads(await response["body"].read())
    assert message["type"] == "message" and message["id"].startswith("msg_bdrk_")
    assert message["model"] == "claude-sonnet-4-5-20250929"
    assert message["content"] == [{"type": "text", "text": "You said: Hello there"}]
    assert message["usage"] == {
        "input_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 4,
    }
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "3"


async def test_stream_is_chunk_frames_with_metrics_on_the_last(bedrock: Any) -> None:
    script = {"reply": "Hi.", "tool_calls": [{"name": "Bash", "input": {"command": "ls"}}]}
    response = await bedrock.invoke_model_with_response_stream(
        modelId=CLAUDE, body=body(directive("x", **script))
    )
    events = [json.loads(event["chunk"]["bytes"]) async for event in response["body"]]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] >= 1
    tool = [e for e in events if e["type"] == "content_block_start"][-1]["content_block"]
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_bdrk_")
    joined = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(joined) == {"command": "ls"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


async def test_stream_error_frame(bedrock: Any) -> None:
    script = {"stream_error": {"type": "throttlingException", "after_events": 2}}
    response = await bedrock.invoke_model_with_response_stream(
        modelId=CLAUDE, body=body(directive("x", **script))
    )
    with pytest.raises(EventStreamError) as info:
        _ = [event async for event in response["body"]]
    assert info.value.response["Error"]["Code"] == "throttlingException"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (body("x", model="claude"), "extraneous key [model] is not permitted"),
        (body("x", stream=True), "extraneous key [stream] is not permitted"),
        (body("x", anthropic_beta=["claude-code-20250219"]), "invalid beta flag"),
        (json.dumps({"max_tokens": 1, "messages": []}).encode(), "anthropic_version"),
    ],
)
async def test_invoke_refuses_what_bedrock_refuses(
    bedrock: Any, payload: bytes, message: str
) -> None:
    with pytest.raises(ClientError) as info:
        await bedrock.invoke_model(modelId=CLAUDE, body=payload)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert message in info.value.response["Error"]["Message"]


async def test_count_tokens_matches_the_invoke_input(bedrock: Any) -> None:
    payload = body("How many tokens is this sentence?", system="Be brief.")
    counted = await bedrock.count_tokens(modelId=CLAUDE, input={"invokeModel": {"body": payload}})
    response = await bedrock.invoke_model(modelId=CLAUDE, body=payload)
    message = json.loads(await response["body"].read())
    assert counted["inputTokens"] == message["usage"]["input_tokens"]


async def test_count_tokens_only_for_claude(bedrock: Any) -> None:
    payload = base64.b64encode(body("x")).decode()
    assert payload
    with pytest.raises(ClientError) as info:
        await bedrock.count_tokens(
            modelId="amazon.nova-micro-v1:0",
            input={"converse": {"messages": [{"role": "user", "content": [{"text": "x"}]}]}},
        )
    assert "doesn't support counting tokens" in info.value.response["Error"]["Message"]
