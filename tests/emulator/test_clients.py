"""Real aiobotocore clients (signed requests, botocore parsers) against a running emulator."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import botocore
import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError, ConnectionClosedError, EventStreamError

from gateway.emulator.errors import BEDROCK_ERRORS, STREAM_EXCEPTIONS
from tests.emulator.conftest import NO_RETRIES, user
from tests.servers import ServerThread

MODEL = "us.amazon.nova-micro-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/mi1dadi0g15f"


async def collect(response: dict[str, Any]) -> list[dict[str, Any]]:
    stream = response["stream"]
    try:
        return [event async for event in stream]
    finally:
        stream.close()


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
    )


async def test_converse_default_answer(bedrock: Any) -> None:
    response = await bedrock.converse(modelId=MODEL, messages=user("Hello there"))
    assert response["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "You said: Hello there"}],
    }
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    assert response["metrics"] == {"latencyMs": 0}
    assert len(response["ResponseMetadata"]["RequestId"]) == 36


async def test_stream_text_in_chunks(bedrock: Any) -> None:
    script = {"reply": "The capital of France is Paris.", "chunks": 4}
    events = await collect(await bedrock.converse_stream(modelId=MODEL, messages=user("q", script)))
    names = [next(iter(e)) for e in events]
    assert names == [
        "messageStart",
        *["contentBlockDelta"] * 4,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0]["messageStart"] == {"role": "assistant"}
    assert text_of(events) == script["reply"]
    assert events[-2]["messageStop"] == {"stopReason": "end_turn"}
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 6


async def test_model_ids_may_be_arns(bedrock: Any) -> None:
    response = await bedrock.converse(modelId=PROFILE_ARN, messages=user("hi"))
    assert response["output"]["message"]["content"] == [{"text": "You said: hi"}]
    events = await collect(await bedrock.converse_stream(modelId=PROFILE_ARN, messages=user("hi")))
    assert text_of(events) == "You said: hi"


async def test_tool_calls(bedrock: Any) -> None:
    script = {
        "reply": "Let me look.",
        "tool_calls": [
            {"name": "get_weather", "input": {"city": "Paris", "units": ["c"]}},
            {"name": "get_time", "id": "tooluse_fixed"},
        ],
    }
    response = await bedrock.converse(modelId=MODEL, messages=user("weather?", script))
    content = response["output"]["message"]["content"]
    assert content[0] == {"text": "Let me look."}
    assert content[1]["toolUse"]["name"] == "get_weather"
    assert content[1]["toolUse"]["input"] == {"city": "Paris", "units": ["c"]}
    assert content[1]["toolUse"]["toolUseId"].startswith("tooluse_")
    assert content[2]["toolUse"] == {"toolUseId": "tooluse_fixed", "name": "get_time", "input": {}}
    assert response["stopReason"] == "tool_use"

    events = await collect(
        await bedrock.converse_stream(modelId=MODEL, messages=user("weather?", script))
    )
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert [s["contentBlockIndex"] for s in starts] == [1, 2]
    assert starts[0]["start"]["toolUse"] == {
        "toolUseId": content[1]["toolUse"]["toolUseId"],
        "name": "get_weather",
    }
    for index, block in ((1, content[1]), (2, content[2])):
        fragments = [
            e["contentBlockDelta"]["delta"]["toolUse"]["input"]
            for e in events
            if e.get("contentBlockDelta", {}).get("contentBlockIndex") == index
        ]
        assert fragments[0] == "" and len(fragments) >= 3
        assert json.loads("".join(fragments)) == block["toolUse"]["input"]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"


async def test_reasoning(bedrock: Any) -> None:
    script = {
        "reasoning": {"text": "The user greets me.", "signature": "c2lnbmF0dXJl"},
        "reply": "Hi!",
    }
    response = await bedrock.converse(modelId=MODEL, messages=user("hello", script))
    assert response["output"]["message"]["content"] == [
        {
            "reasoningContent": {
                "reasoningText": {"text": "The user greets me.", "signature": "c2lnbmF0dXJl"}
            }
        },
        {"text": "Hi!"},
    ]
    events = await collect(
        await bedrock.converse_stream(modelId=MODEL, messages=user("hello", script))
    )
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    reasoning = [d["delta"]["reasoningContent"] for d in deltas if d["contentBlockIndex"] == 0]
    assert "".join(r.get("text", "") for r in reasoning) == "The user greets me."
    assert reasoning[-1] == {"signature": "c2lnbmF0dXJl"}
    assert [d["delta"] for d in deltas if d["contentBlockIndex"] == 1] == [{"text": "Hi!"}]


async def test_redacted_reasoning(bedrock: Any) -> None:
    script = {"reasoning": [{"redacted": "c2VjcmV0"}], "reply": "Done."}
    response = await bedrock.converse(modelId=MODEL, messages=user("x", script))
    # A blob in the service model: botocore hands over the decoded bytes.
    assert response["output"]["message"]["content"][0] == {
        "reasoningContent": {"redactedContent": b"secret"}
    }
    events = await collect(await bedrock.converse_stream(modelId=MODEL, messages=user("x", script)))
    assert events[1]["contentBlockDelta"]["delta"] == {
        "reasoningContent": {"redactedContent": b"secret"}
    }


async def test_usage_with_cache_tokens(bedrock: Any) -> None:
    usage = {
        "inputTokens": 2,
        "outputTokens": 5,
        "cacheReadInputTokens": 1322,
        "cacheWriteInputTokens": 7,
    }
    # Writes are split by lifetime in cacheDetails, as Bedrock does (captured: 5m).
    details = [{"inputTokens": 7, "ttl": "5m"}]
    expected = {**usage, "totalTokens": 1336, "cacheDetails": details}
    response = await bedrock.converse(modelId=MODEL, messages=user("x", {"usage": usage}))
    assert response["usage"] == expected
    events = await collect(
        await bedrock.converse_stream(modelId=MODEL, messages=user("x", {"usage": usage}))
    )
    assert events[-1]["metadata"]["usage"] == expected


async def test_omit_metadata(bedrock: Any) -> None:
    events = await collect(
        await bedrock.converse_stream(modelId=MODEL, messages=user("x", {"omit_metadata": True}))
    )
    assert next(iter(events[-1])) == "messageStop"


@pytest.mark.parametrize("name", sorted(BEDROCK_ERRORS))
async def test_http_errors_reach_the_client(bedrock: Any, name: str) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(
            modelId=MODEL, messages=user("x", {"error": {"type": name, "message": "scripted"}})
        )
    response = caught.value.response
    assert response["Error"] == {"Code": name, "Message": "scripted"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == BEDROCK_ERRORS[name][0]
    assert response["ResponseMetadata"]["RequestId"]


async def test_http_errors_come_before_a_stream(bedrock: Any) -> None:
    with pytest.raises(bedrock.exceptions.ThrottlingException) as caught:
        await bedrock.converse_stream(
            modelId=MODEL, messages=user("x", {"error": "ThrottlingException"})
        )
    assert caught.value.response["Error"]["Message"] == BEDROCK_ERRORS["ThrottlingException"][1]


@pytest.mark.parametrize("name", sorted(STREAM_EXCEPTIONS))
async def test_stream_errors_raise_while_iterating(bedrock: Any, name: str) -> None:
    script = {"stream_error": {"type": name, "after_events": 3, "message": "mid-stream"}}
    response = await bedrock.converse_stream(
        modelId=MODEL, messages=user("one two three four", script)
    )
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as caught:
        async for event in response["stream"]:
            seen.append(event)
    response["stream"].close()
    assert len(seen) == 3
    assert caught.value.response["Error"] == {"Code": name, "Message": "mid-stream"}


async def test_disconnect_breaks_the_stream(bedrock: Any, caplog: pytest.LogCaptureFixture) -> None:
    response = await bedrock.converse_stream(
        modelId=MODEL, messages=user("one two three", {"disconnect_after": 2})
    )
    seen: list[dict[str, Any]] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async for event in response["stream"]:
            seen.append(event)
    response["stream"].close()
    assert [next(iter(e)) for e in seen] == ["messageStart", "contentBlockDelta"]
    # The server closed the socket because of our exception, but does not log it as a bug.
    assert not [r for r in caplog.records if r.name == "uvicorn.error" and r.exc_info]


async def test_disconnect_breaks_a_converse_body(bedrock: Any) -> None:
    with pytest.raises(ConnectionClosedError):
        await bedrock.converse(modelId=MODEL, messages=user("x", {"disconnect_after": 0}))


async def test_invalid_model(bedrock: Any) -> None:
    for call in (bedrock.converse, bedrock.converse_stream):
        with pytest.raises(bedrock.exceptions.ValidationException) as caught:
            await call(modelId="invalid-model", messages=user("x"))
        assert (
            caught.value.response["Error"]["Message"] == "The provided model identifier is invalid."
        )
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_validation_errors(bedrock: Any) -> None:
    with pytest.raises(
        bedrock.exceptions.ValidationException, match="alternate between user and assistant"
    ):
        await bedrock.converse(modelId=MODEL, messages=[*user("a"), *user("b")])
    with pytest.raises(bedrock.exceptions.ValidationException, match="unknown key 'rplyy'"):
        await bedrock.converse(modelId=MODEL, messages=user("a", {"rplyy": "typo"}))
    with pytest.raises(bedrock.exceptions.ValidationException, match="doesn't support the model"):
        await bedrock.converse(modelId="amazon.titan-embed-text-v2:0", messages=user("a"))


async def test_fail_times_then_succeed(bedrock: Any) -> None:
    key = f"retry-{uuid.uuid4()}"
    script = {"fail_times": 2, "key": key, "error": "ServiceUnavailableException"}
    for _ in range(2):
        with pytest.raises(bedrock.exceptions.ServiceUnavailableException):
            await bedrock.converse(modelId=MODEL, messages=user("x", script))
    events = await collect(
        await bedrock.converse_stream(modelId="other-model", messages=user("x", script))
    )
    assert text_of(events) == "You said: x"


async def test_unsigned_requests_are_refused(server: ServerThread, session: Any) -> None:
    config = NO_RETRIES.merge(AioConfig(signature_version=botocore.UNSIGNED))
    async with session.create_client(
        "bedrock-runtime", endpoint_url=server.url, config=config
    ) as client:
        with pytest.raises(ClientError) as caught:
            await client.converse(modelId=MODEL, messages=user("x"))
    assert caught.value.response["Error"] == {
        "Code": "MissingAuthenticationTokenException",
        "Message": "Missing Authentication Token",
    }
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize(
    ("model_id", "body", "size"),
    [
        ("amazon.titan-embed-text-v1", {"inputText": "hello world"}, 1536),
        ("amazon.titan-embed-text-v2:0", {"inputText": "hello world", "dimensions": 256}, 256),
        ("cohere.embed-english-v3", {"texts": ["hello world"], "input_type": "search_query"}, 1024),
        (
            "cohere.embed-multilingual-v3",
            {"texts": ["hello world"], "input_type": "clustering"},
            1024,
        ),
    ],
)
async def test_invoke_embeddings(
    bedrock: Any, model_id: str, body: dict[str, Any], size: int
) -> None:
    response = await bedrock.invoke_model(
        modelId=model_id, body=json.dumps(body), contentType="application/json"
    )
    assert response["contentType"] == "application/json"
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "3"
    result = json.loads(await response["body"].read())
    vector = result["embeddings"][0] if "embeddings" in result else result["embedding"]
    assert len(vector) == size


@pytest.mark.parametrize(
    "name", ["ServiceQuotaExceededException", "ThrottlingException", "ModelNotReadyException"]
)
async def test_invoke_errors(bedrock: Any, name: str) -> None:
    body = {"inputText": f"hello\n@emulator {json.dumps({'error': name})}"}
    with pytest.raises(ClientError) as caught:
        await bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps(body))
    assert caught.value.response["Error"]["Code"] == name
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == BEDROCK_ERRORS[name][0]


async def test_invoke_refuses_chat_keys_and_other_models(bedrock: Any) -> None:
    body = {"texts": ['x\n@emulator {"reply": "no"}'], "input_type": "search_query"}
    with pytest.raises(
        bedrock.exceptions.ValidationException, match="does not apply to InvokeModel"
    ):
        await bedrock.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps(body))
    two = {
        "texts": ['@emulator {"delay_ms": 1}', '@emulator {"delay_ms": 2}'],
        "input_type": "clustering",
    }
    with pytest.raises(bedrock.exceptions.ValidationException, match="Only one @emulator"):
        await bedrock.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps(two))
    with pytest.raises(bedrock.exceptions.ValidationException, match="only embedding models"):
        await bedrock.invoke_model(modelId="meta.llama3-1-70b-instruct-v1:0", body=b"{}")
    with pytest.raises(bedrock.exceptions.ValidationException, match="Malformed input request"):
        await bedrock.invoke_model(modelId="amazon.titan-embed-text-v1", body=b"{}")
