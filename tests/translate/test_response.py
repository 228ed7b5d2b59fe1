"""Converse responses -> OpenAI chat.completion objects: goldens and the usage table.

`tests/golden/response/<case>.converse.json` is a Converse response body as JSON on
Bedrock's wire (the `text`, `tool-use*`, `cache-*` and `max-tokens` cases are the real
recordings' bodies from /work/shared/fixtures/recorded/). The test parses it with botocore's
own rest-json parser, so the translator sees what aiobotocore's `converse()` returns: blobs
as bytes, unmodelled fields such as `serverToolUsage` gone, `ResponseMetadata` added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.parsers import RestJSONParser
from openai.types.chat import ChatCompletion

from gateway.translate.openai_chat.response import (
    converse_to_openai_response,
    encode_redacted,
    openai_usage,
    tool_arguments,
)

GOLDEN = Path(__file__).parent.parent / "golden" / "response"
CASES = sorted(path.name.removesuffix(".converse.json") for path in GOLDEN.glob("*.converse.json"))
TOOL_NAMES = {"parallel-tool-use-renamed": {"orders_lookup": "orders.lookup"}}
# The `structured-output*` cases answer a request whose response_format became this tool.
STRUCTURED_OUTPUT_TOOL = "CityLocation"

_OUTPUT_SHAPE = (
    botocore.session.get_session()
    .get_service_model("bedrock-runtime")
    .operation_model("Converse")
    .output_shape
)


def as_aiobotocore_returns(body: bytes) -> dict[str, Any]:
    response = {"status_code": 200, "headers": {}, "body": body}
    parsed: dict[str, Any] = RestJSONParser().parse(response, _OUTPUT_SHAPE)
    return parsed


@pytest.mark.parametrize("case", CASES)
def test_response_golden(case: str, update_golden: bool) -> None:
    resp = as_aiobotocore_returns((GOLDEN / f"{case}.converse.json").read_bytes())
    result = converse_to_openai_response(
        resp,
        completion_id="chatcmpl-golden",
        model="golden-model",
        created=1_700_000_000,
        tool_names=TOOL_NAMES.get(case),
        structured_output_tool=(
            STRUCTURED_OUTPUT_TOOL if case.startswith("structured-output") else None
        ),
    )
    ChatCompletion.model_validate(result)
    path = GOLDEN / f"{case}.openai.json"
    if update_golden:
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"no {path.name}: run pytest --update-golden and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == result


def test_botocore_hands_redacted_reasoning_over_as_bytes() -> None:
    resp = as_aiobotocore_returns((GOLDEN / "redacted-reasoning.converse.json").read_bytes())
    blob = resp["output"]["message"]["content"][0]["reasoningContent"]["redactedContent"]
    assert blob == b"EtkECkgIBxABGAIqQ-opaque"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            None,
            {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
        (
            {"inputTokens": 13, "outputTokens": 5, "totalTokens": 18},
            {
                "prompt_tokens": 13,
                "completion_tokens": 5,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
        (
            {
                "inputTokens": 2,
                "outputTokens": 5,
                "totalTokens": 1329,
                "cacheReadInputTokens": 1322,
                "cacheWriteInputTokens": 0,
            },
            {
                "prompt_tokens": 1324,
                "completion_tokens": 5,
                "total_tokens": 1329,
                "prompt_tokens_details": {"cached_tokens": 1322, "cache_write_tokens": 0},
            },
        ),
        (
            {
                "inputTokens": 2,
                "outputTokens": 5,
                "totalTokens": 1329,
                "cacheReadInputTokens": 0,
                "cacheWriteInputTokens": 1322,
            },
            {
                "prompt_tokens": 1324,
                "completion_tokens": 5,
                "total_tokens": 1329,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1322},
            },
        ),
    ],
    ids=["missing", "no-cache-fields", "cache-read", "cache-write"],
)
def test_openai_usage(usage: dict[str, int] | None, expected: dict[str, Any]) -> None:
    assert openai_usage(usage) == expected
    if usage is not None:
        assert openai_usage(usage)["total_tokens"] == usage["totalTokens"]


@pytest.mark.parametrize(
    ("tool_input", "arguments"),
    [
        ({"city": "Zürich", "days": [1, 2]}, '{"city":"Zürich","days":[1,2]}'),
        ({}, "{}"),
        (None, "{}"),
        ([1, "a"], '[1,"a"]'),
    ],
)
def test_tool_arguments_are_compact_json(tool_input: Any, arguments: str) -> None:
    assert tool_arguments(tool_input) == arguments


def test_encode_redacted_gives_the_wire_base64() -> None:
    assert encode_redacted(b"\xfb\xff") == "+/8="
    assert encode_redacted("+/8=") == "+/8="


def test_content_is_null_only_when_the_answer_is_tool_calls() -> None:
    def content(blocks: list[dict[str, Any]]) -> str | None:
        resp = {"output": {"message": {"role": "assistant", "content": blocks}}}
        result = converse_to_openai_response(resp, completion_id="c", model="m", created=0)
        value: str | None = result["choices"][0]["message"]["content"]
        return value

    call = {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}
    assert content([call]) is None
    assert content([{"text": "a"}, call, {"text": "b"}]) == "ab"
    assert content([]) == ""
    assert content([{"image": {"format": "png", "source": {"bytes": b""}}}]) == ""
