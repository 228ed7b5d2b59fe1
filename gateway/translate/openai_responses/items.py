"""Responses input items as chat-completions messages, which the chat pair then sends.

Why through chat messages: the chat translator already owns every Converse rule for a
conversation (system placement, merging of turns, blank text, images and documents, tool
history repair, reasoning placement under thinking). Responses items say the same things
in another shape, so they are reshaped here and the rules are not written twice. Each
chat message remembers the input path it came from (`ChatMessages.paths`), so an error
the chat translator raises names the client's field (`input[3].content[0]`), not ours.

The mapping:

* `instructions` -> a system message before everything else.
* `message` items: `system` / `developer` -> system (collected into Converse `system`,
  in order); `user` -> a user message whose `input_text`, `input_image` and `input_file`
  parts become text, image and file parts; `assistant` -> an assistant message from its
  `output_text` (and `refusal`) parts. A string `content` is one text part. Consecutive
  user or developer messages thus end in one Converse turn or one system list.
* `function_call` items -> tool calls on an assistant message: appended to the message
  just before when it is the assistant's (its text and its calls are one turn), else on
  a new one. A namespaced call's name is the flattened one (`gateway.translate.
  openai_responses.tools`).
* `custom_tool_call` items -> the same, the free-form input as the one argument of the
  tool's stand-in function (`gateway.translate.openai_responses.tools`).
* `function_call_output` and `custom_tool_call_output` -> a tool message; a string
  output, or `input_text` parts.
* `reasoning` items with `encrypted_content` -> the decoded reasoning (text, signature,
  redacted blocks) on the assistant message that follows, where the chat translator
  places it first when thinking is on. A reasoning item without `encrypted_content`
  carries only a summary (the model's prose, unsigned): Bedrock cannot take it back as
  reasoning, so it is left out; the guide says so.
* Any other item type (`item_reference`, hosted tool calls) and `file_id` images or files
  are a 400 naming the item: there is nothing the gateway could send for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai_responses import (
    ContentPart,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFilePart,
    InputImagePart,
    InputItem,
    InputTextPart,
    MessageItem,
    OtherItem,
    OtherPart,
    OutputTextPart,
    ReasoningItem,
    RefusalPart,
)
from gateway.translate.openai_responses.reasoning_codec import (
    DecodeError,
    Reasoning,
    decode_reasoning,
)
from gateway.translate.openai_responses.tools import CUSTOM_INPUT, flat_name

__all__ = ["ChatMessages", "chat_messages"]


@dataclass(slots=True)
class ChatMessages:
    """Chat messages (plain dicts, validated by the caller) and where each came from."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # input path of each message
    call_paths: dict[int, list[str]] = field(default_factory=dict)  # per message, per call

    def add(self, message: dict[str, Any], path: str) -> None:
        self.messages.append(message)
        self.paths.append(path)


def chat_messages(
    items: Sequence[InputItem],
    *,
    instructions: str | None,
    reasoning_key: bytes,
    prefix: str = "input",
    history: Sequence[InputItem] = (),
) -> ChatMessages:
    """The chat messages for `history` (a stored conversation), `instructions` and `items`."""
    out = ChatMessages()
    if instructions:
        out.add({"role": "system", "content": instructions}, "instructions")
    pending: Reasoning | None = None
    tagged = [(f"previous_response_id[{i}]", item) for i, item in enumerate(history)]
    tagged += [(f"{prefix}[{i}]", item) for i, item in enumerate(items)]
    for path, item in tagged:
        match item:
            case MessageItem(role="system" | "developer"):
                out.add(
                    {"role": "system", "content": _texts(item.content, f"{path}.content")}, path
                )
            case MessageItem(role="user"):
                out.add({"role": "user", "content": _user_parts(item.content, path)}, path)
            case MessageItem(role="assistant"):
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": _assistant_parts(item.content, path),
                }
                _attach(message, pending)
                pending = None
                out.add(message, path)
            case FunctionCallItem():
                _add_call(out, item.call_id, item.name, item.namespace, item.arguments, path)
                _attach(out.messages[-1], pending)
                pending = None
            case CustomToolCallItem():
                arguments = json.dumps({CUSTOM_INPUT: item.input}, ensure_ascii=False)
                _add_call(out, item.call_id, item.name, item.namespace, arguments, path)
                _attach(out.messages[-1], pending)
                pending = None
            case FunctionCallOutputItem() | CustomToolCallOutputItem():
                content: Any = (
                    item.output
                    if isinstance(item.output, str)
                    else _texts(item.output, f"{path}.output")
                )
                out.add({"role": "tool", "tool_call_id": item.call_id, "content": content}, path)
            case ReasoningItem():
                if item.encrypted_content is not None:
                    pending = _decode(item.encrypted_content, path, reasoning_key)
            case OtherItem():
                raise UnsupportedParameterError(
                    f"Input items of type '{item.type}' cannot be sent to Bedrock; send "
                    "message, function_call, function_call_output or reasoning items.",
                    param=f"{path}.type",
                )
    return out


def _decode(content: str, path: str, key: bytes) -> Reasoning:
    try:
        return decode_reasoning(content, key=key)
    except DecodeError as exc:
        raise InvalidRequestError(
            f"This reasoning item's encrypted_content cannot be used: {exc}. Send back "
            "reasoning items exactly as this gateway returned them, or leave them out.",
            param=f"{path}.encrypted_content",
        ) from None


def _attach(message: dict[str, Any], pending: Reasoning | None) -> None:
    """Put `pending` reasoning on `message`; the caller then forgets it."""
    if pending is not None and "reasoning_content" not in message:
        if pending.text is not None or pending.signature is not None:
            message["reasoning_content"] = pending.text or ""
        if pending.signature is not None:
            message["reasoning_signature"] = pending.signature
        if pending.redacted:
            message["reasoning_redacted"] = list(pending.redacted)


def _add_call(
    out: ChatMessages,
    call_id: str,
    name: str,
    namespace: str | None,
    arguments: str,
    path: str,
) -> None:
    name = flat_name(namespace, name) if namespace else name
    call = {
        "type": "function",
        "id": call_id,
        "function": {"name": name, "arguments": arguments},
    }
    last = out.messages[-1] if out.messages else None
    if last is None or last["role"] != "assistant":
        out.add({"role": "assistant", "content": None}, path)
        last = out.messages[-1]
    last.setdefault("tool_calls", []).append(call)
    out.call_paths.setdefault(len(out.messages) - 1, []).append(path)


def _parts(content: str | list[ContentPart]) -> list[ContentPart]:
    return [InputTextPart(type="input_text", text=content)] if isinstance(content, str) else content


def _texts(content: str | list[ContentPart], base: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content)):
        match part:
            case InputTextPart() | OutputTextPart():
                result.append({"type": "text", "text": part.text})
            case _:
                raise UnsupportedParameterError(
                    f"Only text parts are accepted here, not '{part.type}'.",
                    param=f"{base}[{j}]",
                )
    return result


def _user_parts(content: str | list[ContentPart], path: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content)):
        param = f"{path}.content[{j}]"
        match part:
            case InputTextPart() | OutputTextPart():
                result.append({"type": "text", "text": part.text})
            case InputImagePart(image_url=str(url)):
                image: dict[str, Any] = {"url": url}
                if part.detail is not None:
                    image["detail"] = part.detail
                result.append({"type": "image_url", "image_url": image})
            case InputImagePart():
                raise UnsupportedParameterError(
                    "Images by file_id live in OpenAI's file store; send image_url "
                    "(a data URL or an https URL).",
                    param=f"{param}.file_id",
                )
            case InputFilePart(file_data=str(data)):
                file: dict[str, Any] = {"file_data": data}
                if part.filename is not None:
                    file["filename"] = part.filename
                result.append({"type": "file", "file": file})
            case InputFilePart():
                field_name = "file_url" if part.file_url is not None else "file_id"
                raise UnsupportedParameterError(
                    "Files must be sent inline as file_data (a data URL); file_id and "
                    "file_url point at storage the gateway does not read.",
                    param=f"{param}.{field_name}",
                )
            case RefusalPart() | OtherPart():
                raise UnsupportedParameterError(
                    f"Content parts of type '{part.type}' are not supported in user messages.",
                    param=f"{param}.type",
                )
    return result


def _assistant_parts(content: str | list[ContentPart], path: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content)):
        match part:
            case InputTextPart() | OutputTextPart():
                result.append({"type": "text", "text": part.text})
            case RefusalPart():
                result.append({"type": "refusal", "refusal": part.refusal})
            case _:
                raise UnsupportedParameterError(
                    f"Content parts of type '{part.type}' are not supported in assistant messages.",
                    param=f"{path}.content[{j}].type",
                )
    return result
