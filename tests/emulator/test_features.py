"""The Converse fields of 2026 through a real aiobotocore client: service tiers, native
structured output, effort, requestMetadata, 1-hour cache points, strict tools."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from botocore.exceptions import ClientError

from gateway.emulator.errors import ServiceError
from gateway.emulator.features import read_features, schema_sample
from tests.emulator.conftest import user
from tests.emulator.test_clients import collect

MODEL = "global.anthropic.claude-sonnet-4-6"
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 6},
        "country": {"enum": ["France", "Japan"]},
        "year": {"type": "integer", "minimum": 1896},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 2},
        "venue": {"anyOf": [{"$ref": "#/$defs/venue"}, {"type": "null"}]},
    },
    "required": ["city", "country", "year", "tags", "venue"],
    "additionalProperties": False,
    "$defs": {
        "tag": {"type": "string"},
        "venue": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "open": {"type": "boolean"}},
            "required": ["name", "open"],
        },
    },
}


def _text_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "structure": {"jsonSchema": {"schema": json.dumps(schema), "name": "Answer"}},
    }


@pytest.mark.parametrize("tier", ["flex", "priority", "default"])
async def test_the_tier_asked_for_is_the_tier_answered(bedrock: Any, tier: str) -> None:
    args = {"modelId": MODEL, "messages": user("x"), "serviceTier": {"type": tier}}
    response = await bedrock.converse(**args)
    assert response["serviceTier"] == {"type": tier}
    events = await collect(await bedrock.converse_stream(**args))
    assert events[-1]["metadata"]["serviceTier"] == {"type": tier}


async def test_no_tier_asked_none_named(bedrock: Any) -> None:
    response = await bedrock.converse(modelId=MODEL, messages=user("x"))
    assert "serviceTier" not in response


async def test_an_unknown_tier_is_a_validation_error(bedrock: Any) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(modelId=MODEL, messages=user("x"), serviceTier={"type": "turbo"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "serviceTier.type" in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_native_structured_output_answers_json_that_fits(bedrock: Any, stream: bool) -> None:
    args = {
        "modelId": MODEL,
        "messages": user("Where were the 2024 Olympics held?"),
        "outputConfig": {"textFormat": _text_format(SCHEMA), "effort": "high"},
    }
    if stream:
        events = await collect(await bedrock.converse_stream(**args))
        text = "".join(
            e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
        )
    else:
        response = await bedrock.converse(**args)
        (block,) = response["output"]["message"]["content"]
        text = block["text"]
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize(
    ("output_config", "says"),
    [
        ({"effort": "extreme"}, "effort"),
        ({"textFormat": _text_format({"type": "array"})}, "object"),
        (
            {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{"}}}},
            "not valid JSON",
        ),
    ],
)
async def test_bad_output_config_is_a_validation_error(
    bedrock: Any, output_config: dict[str, Any], says: str
) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(modelId=MODEL, messages=user("x"), outputConfig=output_config)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert says in caught.value.response["Error"]["Message"]


async def test_adaptive_thinking_with_effort_and_strict_tools_are_accepted(bedrock: Any) -> None:
    tool = {
        "toolSpec": {
            "name": "f",
            "inputSchema": {"json": {"type": "object", "properties": {}}},
            "strict": True,
        }
    }
    response = await bedrock.converse(
        modelId=MODEL,
        messages=user("x", {"reply": "fine"}),
        additionalModelRequestFields={"thinking": {"type": "adaptive"}},
        outputConfig={"effort": "max"},
        toolConfig={"tools": [tool]},
    )
    assert response["output"]["message"]["content"] == [{"text": "fine"}]


async def test_request_metadata_bedrock_accepts_passes(bedrock: Any) -> None:
    metadata = {"key_id": "app1", "team": "search _ rescue", "user": "a@b.c"}
    response = await bedrock.converse(modelId=MODEL, messages=user("x"), requestMetadata=metadata)
    assert response["stopReason"] == "end_turn"


async def test_request_metadata_bedrock_refuses_fails(bedrock: Any) -> None:
    # botocore checks counts and lengths before sending, not the characters: Bedrock does.
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(modelId=MODEL, messages=user("x"), requestMetadata={"t": "a&b"})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "requestMetadata" in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "metadata",
    [{"team": "a&b"}, {f"k{i}": "v" for i in range(17)}, {"k": "v" * 257}, {}, {"": "v"}],
    ids=["bad-character", "17-entries", "value-too-long", "empty", "empty-key"],
)
def test_the_emulator_checks_request_metadata_as_bedrock_does(metadata: dict[str, str]) -> None:
    with pytest.raises(ServiceError) as caught:
        read_features({"requestMetadata": metadata})
    assert caught.value.name == "ValidationException"


@pytest.mark.parametrize("ttl", ["5m", "1h"])
async def test_cache_details_report_writes_under_the_first_points_lifetime(
    bedrock: Any, ttl: str
) -> None:
    usage = {"inputTokens": 3, "outputTokens": 2, "cacheWriteInputTokens": 2074}
    messages = user("x", {"usage": usage})
    point: dict[str, Any] = {"type": "default"} if ttl == "5m" else {"type": "default", "ttl": ttl}
    messages[0]["content"].append({"cachePoint": point})
    response = await bedrock.converse(modelId=MODEL, messages=messages)
    assert response["usage"]["cacheDetails"] == [{"inputTokens": 2074, "ttl": ttl}]


async def test_an_unknown_cache_lifetime_is_refused(bedrock: Any) -> None:
    messages = user("x")
    messages[0]["content"].append({"cachePoint": {"type": "default", "ttl": "24h"}})
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(modelId=MODEL, messages=messages)
    assert caught.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("reason", ["malformed_tool_use", "malformed_model_output"])
async def test_malformed_stop_reasons_can_be_scripted(bedrock: Any, reason: str) -> None:
    response = await bedrock.converse(modelId=MODEL, messages=user("x", {"stop_reason": reason}))
    assert response["stopReason"] == reason


@pytest.mark.parametrize(
    "schema",
    [
        SCHEMA,
        {"type": "object"},
        {"type": "object", "properties": {"n": {"type": ["null", "number"], "minimum": 2.5}}},
        {"type": "object", "properties": {"k": {"const": 7}, "b": {"type": "boolean"}}},
        {"type": "object", "properties": {"deep": {"$ref": "#/definitions/d"}},
         "definitions": {"d": {"type": "object", "properties": {"x": {"type": "string"}}}}},
    ],
)  # fmt: skip
def test_schema_samples_fit_their_schema(schema: dict[str, Any]) -> None:
    jsonschema.validate(schema_sample(schema), schema)


def test_a_self_referencing_schema_ends() -> None:
    schema = {
        "type": "object",
        "properties": {"child": {"$ref": "#/$defs/node"}},
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
    }
    assert isinstance(schema_sample(schema), dict)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("serviceTier", {"type": "flex"}, '{"type":"flex"}'),
        ("requestMetadata", {"team": "search"}, '{"team":"search"}'),
        ("outputConfig", None, "null"),
    ],
)
async def test_echo_replies_with_a_field_of_the_request(
    bedrock: Any, field: str, value: Any, expected: str
) -> None:
    args: dict[str, Any] = {"modelId": MODEL, "messages": user("x", {"echo": field})}
    if value is not None:
        args[field] = value
    response = await bedrock.converse(**args)
    assert response["output"]["message"]["content"] == [{"text": expected}]


async def test_echo_must_name_a_field(bedrock: Any) -> None:
    with pytest.raises(ClientError) as caught:
        await bedrock.converse(modelId=MODEL, messages=user("x", {"echo": ""}))
    assert "'echo'" in caught.value.response["Error"]["Message"]
