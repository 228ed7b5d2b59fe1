"""Read what a Converse request says: validate it as Bedrock does, and find the script in it.

The emulator sits behind a gateway that forwards only the conversation, so a test's wishes
travel inside it: a line `@emulator {...}` in the last user message. That line is taken out
here, before anything is echoed or counted, so that a scripted and an unscripted request
for the same conversation get the same token counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.emulator.errors import ServiceError

__all__ = ["DIRECTIVE", "Conversation", "read_conversation", "split_directive"]

DIRECTIVE = "@emulator"

_ROLES = ("user", "assistant")


@dataclass(frozen=True, slots=True)
class Conversation:
    """The parts of a request the answer depends on."""

    last_user_text: str
    """Every text of the last user message, directive line removed, joined by newlines."""
    directive: str | None
    """The JSON text after `@emulator`, if the last user message has that line."""
    input_chars: int
    """Characters of all text in `system` and `messages`, directive line excluded."""
    max_tokens: int | None
    """`inferenceConfig.maxTokens`, when it is a positive integer."""


def split_directive(text: str) -> tuple[str, str | None]:
    """Return `text` without its `@emulator` line, and that line's JSON (or None).

    The directive must be a line of its own, leading spaces allowed. Two directives in one
    text are refused rather than merged: a test that says two things is a test with a bug.
    """
    if DIRECTIVE not in text:
        return text, None
    kept: list[str] = []
    found: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(DIRECTIVE):
            rest = stripped[len(DIRECTIVE) :]
            if not rest or rest[0] in " \t{":
                if found is not None:
                    raise ServiceError(
                        "ValidationException", "Only one @emulator directive is allowed."
                    )
                found = rest.strip()
                continue
        kept.append(line)
    return "\n".join(kept), found


def _text_chars(value: Any) -> int:
    """Characters under every `text` key, at any depth (tool results nest their text)."""
    if isinstance(value, dict):
        total = 0
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                total += len(item)
            elif isinstance(item, dict | list):
                total += _text_chars(item)
        return total
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value if isinstance(item, dict | list))
    return 0


def _tool_result_texts(tool_result: Any) -> list[str]:
    """Tool results carry the user's text one level down; it is echoed like any text."""
    if not isinstance(tool_result, dict) or not isinstance(tool_result.get("content"), list):
        return []
    return [
        item["text"]
        for item in tool_result["content"]
        if isinstance(item, dict) and isinstance(item.get("text"), str)
    ]


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise ServiceError(
            "ValidationException",
            "1 validation error detected: Value null at 'messages' failed to satisfy "
            "constraint: Member must not be null",
        )
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ServiceError("ValidationException", "The messages field must be a list of objects.")
    if not messages or messages[0].get("role") != "user":
        raise ServiceError(
            "ValidationException",
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message.",
        )
    previous = None
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise ServiceError(
                "ValidationException",
                f"1 validation error detected: Value '{role}' at "
                f"'messages.{index + 1}.member.role' failed to satisfy constraint: "
                "Member must satisfy enum value set: "
                "[user, assistant]",
            )
        if role == previous:
            raise ServiceError(
                "ValidationException",
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again.",
            )
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise ServiceError(
                "ValidationException",
                f"The content field in the Message object at messages.{index} is empty. "
                "Add a ContentBlock object to the content field and try again.",
            )
        if not all(isinstance(block, dict) for block in content):
            raise ServiceError(
                "ValidationException", f"The content of messages.{index} must be objects."
            )
    return messages


_THINKING_FIRST = (
    "messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
    "`{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
    "recommend you include thinking blocks from previous turns. To avoid this requirement, "
    "disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)


def _check_thinking(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> None:
    """Anthropic's rule under extended thinking, as Bedrock passes it on: the last
    assistant turn, when it used tools, must open with its (signed) reasoning. A client
    that drops the reasoning between tool turns fails here as it would on Bedrock."""
    fields = body.get("additionalModelRequestFields")
    thinking = fields.get("thinking") if isinstance(fields, dict) else None
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message["role"] != "assistant":
            continue
        content = message["content"]
        if not any("toolUse" in block for block in content):
            return
        first = content[0]
        if "reasoningContent" not in first:
            found = "tool_use" if "toolUse" in first else "text"
            raise ServiceError(
                "ValidationException", _THINKING_FIRST.format(index=index, found=found)
            )
        text = first["reasoningContent"].get("reasoningText")
        if isinstance(text, dict) and not text.get("signature"):
            raise ServiceError(
                "ValidationException",
                f"messages.{index}.content.0.thinking.signature: Field required",
            )
        return


def read_conversation(body: Mapping[str, Any]) -> Conversation:
    """Validate a parsed Converse body and extract what the answer is built from.

    Raises `ServiceError` (ValidationException) with a message in Bedrock's words for the
    mistakes Bedrock itself rejects: no messages, not starting with a user, roles not
    alternating, empty content, a tool turn under thinking without its signed reasoning.
    """
    messages = _check_messages(body.get("messages"))
    _check_thinking(body, messages)
    system = body.get("system")
    chars = _text_chars(system) + _text_chars(messages)

    last_user = next(m for m in reversed(messages) if m["role"] == "user")
    texts: list[str] = []
    directive: str | None = None
    for block in last_user["content"]:
        text = block.get("text")
        if not isinstance(text, str):
            texts.extend(_tool_result_texts(block.get("toolResult")))
            continue
        cleaned, found = split_directive(text)
        if found is not None:
            if directive is not None:
                raise ServiceError(
                    "ValidationException", "Only one @emulator directive is allowed."
                )
            directive = found
            chars -= len(text) - len(cleaned)
        texts.append(cleaned)

    max_tokens = None
    config = body.get("inferenceConfig")
    if isinstance(config, dict):
        value = config.get("maxTokens")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            max_tokens = value
    return Conversation("\n".join(texts), directive, chars, max_tokens)
