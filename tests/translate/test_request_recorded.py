"""Our requests against the requests real clients sent to Bedrock, and Bedrock accepted.

Each recording in /work/shared/fixtures/recorded/ (see its README) holds a request body
that the real service answered with 200. Here an OpenAI request meaning the same thing is
translated and compared with it block for block, after removing the differences the
gateway makes on purpose (`_normalized`). This pins the wire shapes of images, documents,
cache points and reasoning to what Bedrock is known to take, rather than to our reading
of its documentation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
)
from gateway.translate.openai_chat.response import converse_to_openai_response, openai_usage
from tests.translate.wire import to_wire

RECORDED = Path("/work/shared/fixtures/recorded")
EPHEMERAL = {"type": "ephemeral"}


def _recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _normalized(body: dict[str, Any]) -> dict[str, Any]:
    """A recorded body without what the gateway leaves out on purpose.

    Empty `system` and `inferenceConfig` (nothing to send), `toolChoice: auto` (Converse's
    default, which some models refuse to see spelt out) and whitespace-only text blocks
    (which Bedrock refuses for some models; the recording's client sent one).
    """
    result = {key: value for key, value in body.items() if value not in ([], {})}
    for message in result["messages"]:
        message["content"] = [
            block for block in message["content"] if block.get("text", "x").strip()
        ]
    config = result.get("toolConfig")
    if config is not None and config.get("toolChoice") == {"auto": {}}:
        del config["toolChoice"]
    return result


def _translate(body: dict[str, Any], model_id: str, **kwargs: Any) -> ConverseCall:
    return openai_to_converse_request(
        ChatCompletionRequest.model_validate(body), model_id=model_id, **kwargs
    )


def _data_url(mime: str, b64: str) -> str:
    return f"data:{mime};base64,{b64}"


def test_cache_points_in_system_message_and_tools_match_the_recording() -> None:
    recording = _recording("converse_cache_write_claude_sonnet45")
    wire = recording["request"]["body"]
    [system_text, _] = wire["system"]
    first, document, _, _, question, _ = wire["messages"][0]["content"]
    empty = {"type": "object", "properties": {}, "additionalProperties": False}
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {
                "role": "system",
                "content": [{**_text(system_text["text"]), "cache_control": EPHEMERAL}],
            },
            {
                "role": "user",
                "content": [
                    _text(first["text"]),
                    {
                        "type": "file",
                        "file": {
                            "file_data": _data_url(
                                "text/plain", document["document"]["source"]["bytes"]
                            ),
                            "filename": document["document"]["name"],
                        },
                    },
                    {**_text("\n"), "cache_control": EPHEMERAL},
                    {**_text(question["text"]), "cache_control": EPHEMERAL},
                ],
            },
        ],
        "tools": [
            {"type": "function", "function": {"name": "catalog_lookup", "parameters": empty}},
            {
                "type": "function",
                "function": {"name": "diagnostics", "parameters": empty},
                "cache_control": EPHEMERAL,
            },
        ],
    }
    call = _translate(body, recording["request"]["model_id"])
    assert to_wire(call.request) == _normalized(wire)


def test_jpeg_with_a_cache_point_matches_the_recording() -> None:
    recording = _recording("converse_image_jpeg_cachepoint_claude_sonnet45")
    wire = recording["request"]["body"]
    first, second, image, _ = wire["messages"][0]["content"]
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": wire["system"][0]["text"]},
            {
                "role": "user",
                "content": [
                    _text(first["text"]),
                    _text(second["text"]),
                    {
                        "type": "image_url",
                        # Labelled PNG on purpose: the format comes from the bytes.
                        "image_url": {
                            "url": _data_url("image/png", image["image"]["source"]["bytes"])
                        },
                        "cache_control": EPHEMERAL,
                    },
                ],
            },
        ],
    }
    call = _translate(body, recording["request"]["model_id"])
    assert to_wire(call.request) == _normalized(wire)


def test_pdf_documents_in_a_multi_turn_history_match_the_recording() -> None:
    recording = _recording("converse_document_pdf_claude37")
    wire = recording["request"]["body"]
    messages: list[dict[str, Any]] = []
    for message in wire["messages"]:
        parts: list[dict[str, Any]] = []
        for block in message["content"]:
            if "text" in block:
                parts.append(_text(block["text"]))
            else:
                document = block["document"]
                data = _data_url("application/pdf", document["source"]["bytes"])
                parts.append(
                    {"type": "file", "file": {"file_data": data, "filename": document["name"]}}
                )
        messages.append({"role": message["role"], "content": parts})
    call = _translate(
        {"model": "claude-3-7", "messages": messages}, recording["request"]["model_id"]
    )
    assert to_wire(call.request) == _normalized(wire)


def test_signed_reasoning_goes_back_exactly_as_bedrock_returned_it() -> None:
    """Response -> the client's next request -> the assistant turn Bedrock produced."""
    recording = _recording("converse_tool_use_with_reasoning_claude37")
    request = recording["request"]["body"]
    produced = recording["response"]["body"]["output"]["message"]
    answer = converse_to_openai_response(
        recording["response"]["body"], completion_id="c", model="m", created=0
    )
    assistant = answer["choices"][0]["message"]
    [call] = assistant["tool_calls"]
    tool = request["toolConfig"]["tools"][0]["toolSpec"]
    body = {
        "model": "claude-3-7",
        "messages": [
            {"role": "user", "content": request["messages"][0]["content"][0]["text"]},
            assistant,
            {"role": "tool", "tool_call_id": call["id"], "content": "Mexico"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": tool["name"], "parameters": tool["inputSchema"]["json"]},
            }
        ],
        "thinking": request["additionalModelRequestFields"]["thinking"],
    }
    translated = _translate(
        body, recording["request"]["model_id"], options=ModelOptions(reasoning_supported=True)
    )
    assert translated.request["messages"][1] == produced
    assert (
        translated.request["additionalModelRequestFields"]
        == (request["additionalModelRequestFields"])
    )


@pytest.mark.parametrize(
    "name", ["converse_cache_write_claude_sonnet45", "converse_cache_read_claude_sonnet45"]
)
def test_cached_tokens_are_bedrocks_cache_reads(name: str) -> None:
    usage = _recording(name)["response"]["body"]["usage"]
    details = openai_usage(usage)["prompt_tokens_details"]
    assert details["cached_tokens"] == usage["cacheReadInputTokens"]
    assert details["cache_write_tokens"] == usage["cacheWriteInputTokens"]
    assert usage["cacheReadInputTokens"] + usage["cacheWriteInputTokens"] == 1322


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}
