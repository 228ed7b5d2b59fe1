"""The emulator's Bedrock Guardrails, through real aiobotocore: a guardrail is checked as
Bedrock checks it, and the `guardrail: "intervene"` directive blocks the answer the way
Converse (stopReason) and Claude on InvokeModel (amazon-bedrock-guardrailAction) say it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from gateway.emulator.guardrails import BLOCKED_MESSAGE
from tests.emulator.conftest import user
from tests.emulator.test_claude import CLAUDE, body, directive

NOVA = "us.amazon.nova-lite-v1:0"
GUARDRAIL = {"guardrailIdentifier": "abc123def456", "guardrailVersion": "1"}
INTERVENE = {"guardrail": "intervene"}


async def test_converse_intervention(bedrock: Any) -> None:
    answer = await bedrock.converse(
        modelId=NOVA, messages=user("Tell me", INTERVENE), guardrailConfig=GUARDRAIL
    )
    assert answer["stopReason"] == "guardrail_intervened"
    assert answer["output"]["message"]["content"] == [{"text": BLOCKED_MESSAGE}]
    assert "trace" not in answer


async def test_no_guardrail_means_nothing_intervenes(bedrock: Any) -> None:
    answer = await bedrock.converse(modelId=NOVA, messages=user("Tell me", INTERVENE))
    assert answer["stopReason"] == "end_turn"
    assert answer["output"]["message"]["content"] == [{"text": "You said: Tell me"}]


async def test_converse_stream_intervention_with_trace(bedrock: Any) -> None:
    config = {**GUARDRAIL, "trace": "enabled", "streamProcessingMode": "async"}
    response = await bedrock.converse_stream(
        modelId=NOVA, messages=user("Tell me", INTERVENE), guardrailConfig=config
    )
    events = [event async for event in response["stream"]]
    stop = next(e["messageStop"] for e in events if "messageStop" in e)
    assert stop["stopReason"] == "guardrail_intervened"
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == BLOCKED_MESSAGE
    metadata = events[-1]["metadata"]
    assert metadata["trace"]["guardrail"]["actionReason"] == "Guardrail blocked."


async def test_echo_shows_the_guardrail_sent(bedrock: Any) -> None:
    answer = await bedrock.converse(
        modelId=NOVA, messages=user("x", {"echo": "guardrailConfig"}), guardrailConfig=GUARDRAIL
    )
    assert json.loads(answer["output"]["message"]["content"][0]["text"]) == GUARDRAIL


@pytest.mark.parametrize(
    "config",
    [
        {"guardrailIdentifier": "Not-Valid", "guardrailVersion": "1"},
        {"guardrailIdentifier": "abc", "guardrailVersion": "0"},
        {"guardrailIdentifier": "abc", "guardrailVersion": "latest"},
        {"guardrailVersion": "1"},
        {"guardrailIdentifier": "abc"},
        {"guardrailIdentifier": "", "guardrailVersion": ""},
    ],
)
async def test_a_malformed_guardrail_is_refused(bedrock: Any, config: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(modelId=NOVA, messages=user("x"), guardrailConfig=config)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "guardrail" in caught.value.response["Error"]["Message"]


async def test_a_bad_trace_is_refused(bedrock: Any) -> None:
    # botocore checks no enum: Bedrock (and the emulator) does.
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(
            modelId=NOVA, messages=user("x"), guardrailConfig={**GUARDRAIL, "trace": "on"}
        )
    assert "trace" in caught.value.response["Error"]["Message"]


async def test_stream_mode_only_on_converse_stream(bedrock: Any) -> None:
    # botocore's Converse shape has no streamProcessingMode: refused before sending.
    with pytest.raises(ParamValidationError):
        await bedrock.converse(
            modelId=NOVA,
            messages=user("x"),
            guardrailConfig={**GUARDRAIL, "streamProcessingMode": "sync"},
        )


async def test_an_arn_and_draft_are_accepted(bedrock: Any) -> None:
    config = {
        "guardrailIdentifier": "arn:aws:bedrock:us-east-1:111122223333:guardrail/abc123",
        "guardrailVersion": "DRAFT",
    }
    answer = await bedrock.converse(modelId=NOVA, messages=user("ok"), guardrailConfig=config)
    assert answer["stopReason"] == "end_turn"


async def test_claude_invoke_intervention_keeps_end_turn(bedrock: Any) -> None:
    response = await bedrock.invoke_model(
        modelId=CLAUDE,
        body=body(directive("Tell me", **INTERVENE)),
        guardrailIdentifier="abc123def456",
        guardrailVersion="1",
        trace="ENABLED",
    )
    message = json.loads(await response["body"].read())
    assert message["stop_reason"] == "end_turn"
    assert message["amazon-bedrock-guardrailAction"] == "INTERVENED"
    assert message["content"] == [{"type": "text", "text": BLOCKED_MESSAGE}]
    assert message["amazon-bedrock-trace"]["guardrail"]["actionReason"] == "Guardrail blocked."


async def test_claude_invoke_with_a_guardrail_that_passes_says_none(bedrock: Any) -> None:
    response = await bedrock.invoke_model(
        modelId=CLAUDE, body=body("Hi"), guardrailIdentifier="abc", guardrailVersion="DRAFT"
    )
    message = json.loads(await response["body"].read())
    assert message["amazon-bedrock-guardrailAction"] == "NONE"
    assert "amazon-bedrock-trace" not in message


async def test_claude_stream_says_it_on_the_last_chunk(bedrock: Any) -> None:
    config = {"streamProcessingMode": "ASYNCHRONOUS"}
    response = await bedrock.invoke_model_with_response_stream(
        modelId=CLAUDE,
        body=body(directive("Tell me", **INTERVENE), **{"amazon-bedrock-guardrailConfig": config}),
        guardrailIdentifier="abc123def456",
        guardrailVersion="2",
    )
    events = [json.loads(event["chunk"]["bytes"]) async for event in response["body"]]
    assert "amazon-bedrock-guardrailAction" not in events[0]["message"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-1]["type"] == "message_stop"
    assert events[-1]["amazon-bedrock-guardrailAction"] == "INTERVENED"


@pytest.mark.parametrize(
    ("params", "extra"),
    [
        ({"guardrailIdentifier": "abc"}, {}),
        ({"guardrailVersion": "1"}, {}),
        ({"guardrailIdentifier": "ABC", "guardrailVersion": "1"}, {}),
        ({}, {"amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"}}),
        (
            {"guardrailIdentifier": "abc", "guardrailVersion": "1"},
            {"amazon-bedrock-guardrailConfig": {"streamProcessingMode": "FAST"}},
        ),
    ],
)
async def test_claude_invoke_refuses_a_malformed_guardrail(
    bedrock: Any, params: dict[str, str], extra: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.invoke_model(modelId=CLAUDE, body=body("Hi", **extra), **params)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


async def test_the_directive_value_is_checked(bedrock: Any) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(
            modelId=NOVA, messages=user("x", {"guardrail": "block"}), guardrailConfig=GUARDRAIL
        )
    assert "guardrail" in caught.value.response["Error"]["Message"]
