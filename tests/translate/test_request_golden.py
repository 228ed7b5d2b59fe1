"""Golden files for the request translator, and the invariants every translated request keeps.

`tests/golden/request/<case>.openai.json` is a request body with an optional top-level
`_options` object: `model_id`, `drop_unsupported`, `model_options` (the `ModelOptions`
fields) and `images` (URL -> `{"format", "base64"}`, the remote images the app would have
fetched). `<case>.converse.json` is the whole expected outcome; blobs are written as the
base64 botocore puts on the wire. `pytest --update-golden` rewrites the expectations;
review the diff.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
)
from gateway.translate.shared.cache_points import MAX_CACHE_POINTS
from tests.translate.wire import to_wire

GOLDEN = Path(__file__).parent.parent / "golden" / "request"
CASES = sorted(path.name.removesuffix(".openai.json") for path in GOLDEN.glob("*.openai.json"))
DEFAULT_MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BEDROCK_IDENTIFIER = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# botocore's DocumentBlock.name: alphanumerics, single whitespace, hyphens, parentheses,
# square brackets; 1..200 characters.
DOCUMENT_NAME = re.compile(r"(?!.*\s\s)[A-Za-z0-9\s()\[\]-]{1,200}")


def _translate(case: str) -> tuple[str, ConverseCall]:
    body = json.loads((GOLDEN / f"{case}.openai.json").read_text(encoding="utf-8"))
    options = body.pop("_options", {})
    model_id = options.get("model_id", DEFAULT_MODEL_ID)
    images = {
        url: (image["format"], base64.b64decode(image["base64"]))
        for url, image in options.get("images", {}).items()
    }
    call = openai_to_converse_request(
        ChatCompletionRequest.model_validate(body),
        model_id=model_id,
        drop_unsupported=options.get("drop_unsupported", False),
        options=ModelOptions(**options.get("model_options", {})),
        images=images,
        request_metadata=options.get("request_metadata"),
    )
    return model_id, call


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_golden: bool) -> None:
    _, call = _translate(case)
    actual = to_wire(
        {
            "request": call.request,
            "dropped": list(call.dropped),
            "tool_names": call.tool_names,
            "structured_output_tool": call.structured_output_tool,
        }
    )
    expected_path = GOLDEN / f"{case}.converse.json"
    if update_golden:
        text = json.dumps(actual, indent=2, ensure_ascii=False)
        expected_path.write_text(text + "\n", encoding="utf-8")
    assert expected_path.exists(), f"no expectation for {case}; run pytest --update-golden"
    assert actual == json.loads(expected_path.read_text(encoding="utf-8"))


def test_every_expectation_has_an_input() -> None:
    expected = {path.name.removesuffix(".converse.json") for path in GOLDEN.glob("*.converse.json")}
    assert expected == set(CASES)


@pytest.fixture(scope="module")
def converse_input_shape() -> Any:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return model.operation_model("Converse").input_shape


@pytest.mark.parametrize("case", CASES)
def test_botocore_accepts_the_request(case: str, converse_input_shape: Any) -> None:
    """What aiobotocore would check before sending: member names, types, required keys."""
    model_id, call = _translate(case)
    report = ParamValidator().validate({"modelId": model_id, **call.request}, converse_input_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("case", CASES)
def test_request_follows_bedrock_conversation_rules(case: str) -> None:
    """The rules Bedrock checks server side, which botocore's validator does not."""
    _, call = _translate(case)
    messages = call.request["messages"]

    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2) + (
        ["user"] if len(messages) % 2 else []
    )
    document_names: list[str] = []
    for message in messages:
        assert message["content"], "empty turn"
        assert any("cachePoint" not in b for b in message["content"]), "turn of cache points"
        for block in message["content"]:
            if "text" in block:
                assert block["text"].strip(), "blank text block"
            if "image" in block or "document" in block:
                assert message["role"] == "user", "media outside a user turn"
            if "document" in block:
                document_names.append(block["document"]["name"])
        reasoning = ["reasoningContent" in b for b in message["content"]]
        assert reasoning == sorted(reasoning, reverse=True), "reasoning comes first"
        assert message["role"] == "assistant" or not any(reasoning)
    for name in document_names:
        assert DOCUMENT_NAME.fullmatch(name), name
        assert name == name.strip()
    assert len({name.casefold() for name in document_names}) == len(document_names)
    for system_block in call.request.get("system", []):
        assert "cachePoint" in system_block or system_block["text"].strip(), "blank system"

    block_lists = [call.request.get("system", [])]
    block_lists += [m["content"] for m in messages]
    block_lists += [call.request.get("toolConfig", {}).get("tools", [])]
    cache_points = 0
    for blocks in block_lists:
        points = ["cachePoint" in b for b in blocks]
        assert points[:1] != [True], "a cache point needs something before it"
        assert not any(a and b for a, b in itertools.pairwise(points)), "two cache points in a row"
        cache_points += sum(points)
    assert cache_points <= MAX_CACHE_POINTS, "Anthropic refuses more"

    for i, message in enumerate(messages):
        uses = [b["toolUse"] for b in message["content"] if "toolUse" in b]
        results = [b["toolResult"] for b in message["content"] if "toolResult" in b]
        if message["role"] == "assistant":
            assert not results
            if uses:
                answer = messages[i + 1]["content"]
                answered = [b["toolResult"]["toolUseId"] for b in answer if "toolResult" in b]
                assert sorted(answered) == sorted(u["toolUseId"] for u in uses)
                assert all("toolResult" in b for b in answer[: len(answered)]), "results first"
        else:
            assert not uses
            if results:
                assert i > 0
                called = {
                    b["toolUse"]["toolUseId"] for b in messages[i - 1]["content"] if "toolUse" in b
                }
                assert {r["toolUseId"] for r in results} <= called
        for use in uses:
            assert BEDROCK_IDENTIFIER.fullmatch(use["name"])
            assert BEDROCK_IDENTIFIER.fullmatch(use["toolUseId"])
            assert isinstance(use["input"], dict)

    tool_config = call.request.get("toolConfig")
    has_tool_blocks = any(
        "toolUse" in b or "toolResult" in b for m in messages for b in m["content"]
    )
    assert not has_tool_blocks or tool_config is not None, "Bedrock requires toolConfig"
    if tool_config is not None:
        names = [tool["toolSpec"]["name"] for tool in tool_config["tools"] if "toolSpec" in tool]
        assert names, "Bedrock requires at least one tool"
        assert len(set(names)) == len(names)
        assert all(BEDROCK_IDENTIFIER.fullmatch(name) for name in names)
        assert set(call.tool_names) <= set(names) | {
            b["toolUse"]["name"] for m in messages for b in m["content"] if "toolUse" in b
        }
        forced = tool_config.get("toolChoice", {}).get("tool")
        assert forced is None or forced["name"] in names
    if call.structured_output_tool is not None:
        assert tool_config is not None
        assert tool_config["tools"][-1]["toolSpec"]["name"] == call.structured_output_tool
        assert call.structured_output_tool not in call.tool_names
    thinking = call.request.get("additionalModelRequestFields", {}).get("thinking")
    if thinking is not None and thinking["type"] == "enabled":
        assert call.request["inferenceConfig"]["maxTokens"] > thinking["budget_tokens"]
        assert "toolChoice" not in (tool_config or {}), "no forced tool use while thinking"
