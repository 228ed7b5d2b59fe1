"""OpenAI chat messages as Converse `system` blocks and strictly alternating turns.

OpenAI takes any sequence of messages; Bedrock wants system text apart, turns that
alternate user/assistant starting with a user turn, no blank text, and every `toolUse`
answered by a `toolResult` in the very next user turn (and no result without its call).
The rules, in order of application:

* System placement: every `system` and `developer` message, wherever it appears, is
  collected into Converse `system`, one text block per text, in order. Bedrock has no
  system turn inside the conversation; LiteLLM and bedrock-access-gateway do the same.
* Content: each part becomes a block as `gateway.translate.openai_chat.content` says (text,
  images, documents, cache points). Blank or whitespace-only text blocks are never sent
  (Bedrock rejects them). A user message left with no content is a 400 naming
  `messages[i].content`; an assistant message with neither text nor tool calls is
  dropped, since clients send such placeholders and they carry nothing. `name` fields
  are accepted and ignored: Converse has no speaker names, and writing them into the
  text would change the prompt.
* Reasoning: when the request turns thinking on, an assistant message's echoed reasoning
  fields become `reasoningContent` blocks placed first among its blocks, ahead of its
  text and tool calls, as Anthropic requires of a tool-use turn under thinking
  (`gateway.translate.shared.reasoning`). They are not added to a message that has
  nothing else to send.
* Merging: consecutive turns of one role become one turn. In a user turn that follows
  tool calls, the `toolResult` blocks come first, as Bedrock requires.
* Tool calls: an assistant's `tool_calls` become `toolUse` blocks after its text, with
  the arguments parsed into an object (empty arguments mean `{}`; anything but a JSON
  object is a 400 naming `messages[i].tool_calls[j].function.arguments`). `tool`
  messages become `toolResult` blocks in a user turn.
* Repair, for histories that real agents produce:
  - a tool result whose call is not in the assistant turn just before it (never made,
    answered already, or cut off by history trimming) becomes a user text block
    `[tool result for call <id>]` followed by its content: the information stays, and
    Bedrock accepts it;
  - a tool call with no result before the next assistant turn (or before the end of the
    conversation) gets a synthetic `toolResult` with status "error" and the text in
    `NO_RESULT_TEXT`, so the model knows the call did not complete.
* Without tools in the request, Bedrock refuses `toolUse`/`toolResult` blocks (they need
  a `toolConfig`), so the calls and results of the history are written as text instead:
  `[tool call <id>: <name>(<arguments>)]` and `[tool result for call <id>]`. A summary
  or title request over an agent's history thus works, and the model cannot call a tool
  the client did not offer.
* After all that, the conversation must start with a user turn (400 naming `messages`).

A tool message's `cache_control` puts a cache point after its result; the sort that
keeps results first in a turn moves it behind the turn's last result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, assert_never

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import (
    ContentBlock,
    Message,
    SystemContentBlock,
    ToolResultContentBlock,
)
from gateway.schemas.openai import AssistantMessage
from gateway.schemas.openai import Message as OpenAIMessage
from gateway.translate.openai_chat.content import ContentParts
from gateway.translate.shared.cache_points import (
    CachePoint,
    append_cache_point,
    without_repeated_cache_points,
)
from gateway.translate.shared.json_text import parse_json
from gateway.translate.shared.reasoning import reasoning_blocks
from gateway.translate.shared.tools import ToolNames, bedrock_identifier

__all__ = ["EMPTY_RESULT_TEXT", "NO_RESULT_TEXT", "Conversation", "convert_messages"]

NO_RESULT_TEXT: Final = "No result was provided for this tool call."
EMPTY_RESULT_TEXT: Final = "(the tool returned no content)"


@dataclass(frozen=True, slots=True)
class Conversation:
    system: list[SystemContentBlock]
    messages: list[Message]
    has_tool_blocks: bool  # Bedrock then requires a toolConfig


def convert_messages(
    messages: Sequence[OpenAIMessage],
    names: ToolNames,
    *,
    tools_offered: bool,
    parts: ContentParts,
    keep_reasoning: bool = False,
) -> Conversation:
    """Converse `system` and `messages` for OpenAI `messages`; see the module docstring.

    `parts` converts content parts with the request's images and limits;
    `keep_reasoning` says whether echoed reasoning is sent (thinking is on).
    """
    system: list[SystemContentBlock] = []
    turns = _Turns()
    for i, message in enumerate(messages):
        # By `role`, the union's discriminator; the roles of an agent's history come first.
        if message["role"] == "tool":
            content, cached = parts.tool_result(message["content"], i)
            if tools_offered:
                turns.add_tool_result(message["tool_call_id"], content)
            else:
                turns.add_user([{"text": _result_as_text(message["tool_call_id"], content)}])
            if cached is not None:
                turns.add_cache_point(cached)
        elif message["role"] == "user":
            blocks = parts.user(message["content"], i)
            if not blocks:
                raise InvalidRequestError(
                    "A user message must not be empty; Bedrock rejects blank content.",
                    param=f"messages[{i}].content",
                )
            turns.add_user(blocks)
        elif message["role"] == "assistant":
            blocks, tool_use_ids = _assistant_blocks(
                message, i, names, turns.tool_use_ids, parts=parts, tools_offered=tools_offered
            )
            if blocks:
                if keep_reasoning:
                    blocks[:0] = reasoning_blocks(message, i)
                turns.add_assistant(blocks, tool_use_ids)
        elif message["role"] == "system" or message["role"] == "developer":
            system.extend(parts.system(message["content"], i))
        elif message["role"] == "function":
            raise UnsupportedParameterError(
                "The legacy 'function' role is not supported; send the result as a "
                "'tool' message answering a tool call.",
                param=f"messages[{i}].role",
            )
        else:
            assert_never(message)
    result = turns.finish()
    if not result:
        raise InvalidRequestError(
            "The conversation needs at least one user message besides system messages.",
            param="messages",
        )
    if result[0]["role"] != "user":
        raise InvalidRequestError(
            "The conversation must start with a user message (after any system or "
            "developer messages); Bedrock rejects a conversation that opens with the "
            "assistant.",
            param="messages",
        )
    return Conversation(system=system, messages=result, has_tool_blocks=turns.has_tool_blocks)


class _ToolUseIds(dict[str, str]):
    """Client tool-call id -> Bedrock tool-use id, each worked out once per request.

    Every id is looked up twice, for the call and for its result.
    """

    def __missing__(self, tool_call_id: str) -> str:
        tool_use_id = self[tool_call_id] = bedrock_identifier(tool_call_id)
        return tool_use_id


class _Turns:
    """Alternating turns, pairing each tool result with the call just before it."""

    def __init__(self) -> None:
        self._turns: list[Message] = []
        # The content of the last turn while it is a user turn, else None.
        self._user: list[ContentBlock] | None = None
        self._expected: dict[str, None] = {}  # toolUse ids of the last assistant turn
        self._answered: set[str] = set()
        self.has_tool_blocks = False
        self.tool_use_ids = _ToolUseIds()

    def add_user(self, blocks: list[ContentBlock]) -> None:
        self._user_content().extend(blocks)

    def add_cache_point(self, point: CachePoint) -> None:
        append_cache_point(self._user_content(), point)

    def add_tool_result(self, tool_call_id: str, content: list[ToolResultContentBlock]) -> None:
        """A tool message's text blocks: a `toolResult` answering the call just before, or
        text when there is no such call."""
        tool_use_id = self.tool_use_ids[tool_call_id]
        if tool_use_id in self._expected and tool_use_id not in self._answered:
            self._answered.add(tool_use_id)
            self._user_content().append(
                {
                    "toolResult": {
                        "toolUseId": tool_use_id,
                        "content": content or [{"text": EMPTY_RESULT_TEXT}],
                    }
                }
            )
        else:
            self._user_content().append({"text": _result_as_text(tool_call_id, content)})

    def add_assistant(self, blocks: list[ContentBlock], tool_use_ids: dict[str, None]) -> None:
        """An assistant turn's `blocks`, whose `toolUse` blocks carry `tool_use_ids`."""
        self._close_tool_round()
        if self._turns and self._user is None:
            self._turns[-1]["content"].extend(blocks)
        else:
            self._turns.append({"role": "assistant", "content": blocks})
            self._user = None
        self._expected = tool_use_ids
        if tool_use_ids:
            self.has_tool_blocks = True

    def finish(self) -> list[Message]:
        self._close_tool_round()
        return self._turns

    def _close_tool_round(self) -> None:
        expected = self._expected
        if not expected:
            return
        content = self._user_content()
        answered = self._answered
        if len(answered) < len(expected):  # answered only holds expected ids
            content.extend(
                [
                    {
                        "toolResult": {
                            "toolUseId": tool_use_id,
                            "content": [{"text": NO_RESULT_TEXT}],
                            "status": "error",
                        }
                    }
                    for tool_use_id in expected
                    if tool_use_id not in answered
                ]
            )
        if _needs_tidying(content):
            # Results first: Bedrock reads the blocks before the first non-result as answers.
            content.sort(key=_is_not_result)
            # The move can bring a result's cache point next to one that followed user text.
            content[:] = without_repeated_cache_points(content)
        self._expected = {}
        if answered:
            self._answered = set()

    def _user_content(self) -> list[ContentBlock]:
        content = self._user
        if content is None:
            content = self._user = []
            self._turns.append({"role": "user", "content": content})
        return content


def _is_not_result(block: ContentBlock) -> bool:
    return "toolResult" not in block


def _needs_tidying(content: list[ContentBlock]) -> bool:
    """Whether sorting the results first, then dropping repeated cache points, would change
    `content`: a result follows another block, or there is a cache point at all. A round
    answered in order (the common case) then costs one pass instead of a sort and a copy.
    """
    other = False
    for block in content:
        if "toolResult" in block:
            if other:
                return True
        elif "cachePoint" in block:
            return True
        else:
            other = True
    return False


def _result_as_text(tool_call_id: str, content: list[ToolResultContentBlock]) -> str:
    text = "\n".join([block["text"] for block in content])
    return f"[tool result for call {tool_call_id}]\n" + (text or EMPTY_RESULT_TEXT)


# -- assistant content ---------------------------------------------------------------------


def _assistant_blocks(
    message: AssistantMessage,
    index: int,
    names: ToolNames,
    tool_use_ids: _ToolUseIds,
    *,
    parts: ContentParts,
    tools_offered: bool,
) -> tuple[list[ContentBlock], dict[str, None]]:
    """The message's blocks, and the Bedrock ids of its `toolUse` blocks, in order."""
    if message.get("function_call") is not None:
        raise UnsupportedParameterError(
            "The legacy 'function_call' field is not supported; send 'tool_calls'.",
            param=f"messages[{index}].function_call",
        )
    blocks = parts.assistant(message.get("content"), message.get("refusal"), index)
    expected: dict[str, None] = {}
    for j, call in enumerate(message.get("tool_calls") or ()):
        if call["type"] == "custom":
            raise UnsupportedParameterError(
                "Custom tool calls are not supported on Bedrock.",
                param=f"messages[{index}].tool_calls[{j}]",
            )
        function = call["function"]
        name = function["name"]
        arguments = function["arguments"]
        if tools_offered:
            tool_use_id = tool_use_ids[call["id"]]
            blocks.append(
                {
                    "toolUse": {
                        "toolUseId": tool_use_id,
                        "name": names.bedrock(name),
                        "input": _arguments(arguments, index, j),
                    }
                }
            )
            expected[tool_use_id] = None
        else:
            blocks.append({"text": f"[tool call {call['id']}: {name}({arguments})]"})
    return blocks, expected


def _arguments(arguments: str, index: int, position: int) -> dict[str, Any]:
    """The arguments of tool call `position` of message `index` as a JSON object.

    Empty (or blank) arguments mean `{}`. The text is read as `json.loads` reads it
    (`parse_json`), so that NaN, big integers and lone surrogates keep their meaning;
    what it cannot read is a 400 naming the arguments, deep nesting and overlong integers
    included (`json.loads` raises RecursionError and a plain ValueError for those).
    """
    try:
        value = parse_json(arguments)
    except json.JSONDecodeError as exc:
        if not arguments.strip():
            return {}
        raise _arguments_error(f"this is not valid JSON ({exc.msg})", index, position) from None
    except ValueError:  # more digits than Python converts to an int
        raise _arguments_error("this holds a number too long to read", index, position) from None
    except RecursionError:
        raise _arguments_error("this is nested too deeply to read", index, position) from None
    if not isinstance(value, dict):
        raise _arguments_error(None, index, position)
    return value


def _arguments_error(reason: str | None, index: int, position: int) -> InvalidRequestError:
    message = "Tool call arguments must be a JSON object"
    return InvalidRequestError(
        f"{message}; {reason}." if reason else f"{message}.",
        param=f"messages[{index}].tool_calls[{position}].function.arguments",
    )
