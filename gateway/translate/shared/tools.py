"""OpenAI tools and `tool_choice` as a Converse `toolConfig`, and Bedrock-safe names.

Why a module of its own: tool names have to agree in three places (the tool list,
`tool_choice`, and the tool calls in the history) and be restored in responses, so the
name mapping and everything that uses it live together.

Names. Bedrock accepts tool names (and tool-use ids) of 1..64 characters from
`[a-zA-Z0-9_-]`; OpenAI clients send dotted MCP names (`github.create_issue`), names in
any script, or names longer than 64. A valid name is sent unchanged. Any other name is
sanitized (each disallowed character becomes `_`, cut to 55 characters) and suffixed with
`_` and 8 hex digits of its SHA-256, so it is stable across requests (the model sees the
same name in every turn, prompt caches keep hitting) and two names that sanitize alike
still differ. `ToolNames.restored()` gives Bedrock name -> original name for the changed
ones, so the response translator can hand the client back the names it sent. Tool-use
ids get the same treatment without the bookkeeping: they only need to pair calls with
results inside one request.

`tool_choice`, as the table `TOOL_CHOICE_MODES` says:

* `"auto"` (and no `tool_choice`): no `toolChoice` is sent. `auto` is Converse's
  documented default, and several models that accept tools reject any `toolChoice`
  ("ToolChoice is only supported by Anthropic Claude 3 models and by Mistral AI Mistral
  Large", botocore's service model for `ToolChoice`), so omitting it is the same request
  and one that more models accept.
* `"required"`: `{"any": {}}`.
* `{"type": "function", "function": {"name": N}}`: `{"tool": {"name": N}}`; N must be one
  of the request's tools (400 naming `tool_choice` otherwise).
* `"none"`: Converse has no "none". With no tool blocks in the history the whole
  `toolConfig` is left out, so the model cannot call a tool. When the history holds
  `toolUse`/`toolResult` blocks Bedrock refuses a request without `toolConfig`, so the
  tools are sent without a `toolChoice`: the model is then asked, not forced, to answer
  in text, and may still call a tool.
* `allowed_tools` and custom-tool choices have no Converse counterpart: 400.

`parallel_tool_calls: false` is honoured for Anthropic models when the model picks its
tools itself (`tool_choice` auto or unset, so Converse sends no `toolChoice`): then
`additionalModelRequestFields.tool_choice` is `{"type": "auto",
"disable_parallel_tool_use": true}`, Anthropic's own switch, which Bedrock passes to the
model. It is not sent with a forced `toolChoice` (required, a named function, structured
output): two tool choices conflict and Bedrock answers 400 (BerriAI/litellm#34347 and
#36536 record both halves of this against the real service). Elsewhere, and for other
model families, which have no such switch, it is accepted and the model may return
several tool calls in one turn.

Tool definitions: `parameters` becomes `inputSchema.json`; a missing schema becomes the
empty object schema, and a schema without a top-level `type` gets `"object"` (Bedrock
requires an object schema). `strict: true` becomes `toolSpec.strict` on models with native
structured output (`strict_tools`), where Bedrock then holds the call's input to the
schema; elsewhere it is accepted and not enforced, the schema is still sent and models
follow it closely. Custom (free-form grammar)
tools are refused with a 400 naming them. `cache_control` on a tool (as Anthropic-style
clients send it) puts a `cachePoint` right after that tool in the list, so the
definitions up to it can be cached (`gateway.translate.shared.cache_points` has the rules).

Tools of the gateway's own (the `response_format` tool of
`gateway.translate.shared.structured`) get their names from `ToolNames.fresh`, so they
never clash with a name the client uses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import Tool, ToolChoice, ToolConfiguration, ToolSpecification
from gateway.schemas.openai import (
    AllowedToolsChoice,
    ChatCompletionRequest,
    FunctionTool,
    NamedCustomToolChoice,
    NamedToolChoice,
)
from gateway.schemas.openai import Tool as OpenAITool
from gateway.schemas.openai import ToolChoice as OpenAIToolChoice
from gateway.translate.shared.cache_points import CacheMarks

__all__ = [
    "TOOL_CHOICE_MODES",
    "ToolNames",
    "bedrock_identifier",
    "function_tools",
    "is_bedrock_identifier",
    "request_tool_names",
    "tool_config",
]

_VALID_IDENTIFIER: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DISALLOWED_CHAR: Final = re.compile(r"[^a-zA-Z0-9_-]")
_DIGEST_LENGTH: Final = 8
_STEM_LENGTH: Final = 64 - 1 - _DIGEST_LENGTH

# OpenAI string `tool_choice` -> Converse `toolChoice` (None: send none). "none" also
# decides whether `toolConfig` is sent at all; see `tool_config`.
TOOL_CHOICE_MODES: Final[Mapping[str, ToolChoice | None]] = {
    "auto": None,
    "required": {"any": {}},
    "none": None,
}


def is_bedrock_identifier(value: str) -> bool:
    """Whether Bedrock accepts `value` as a tool name or tool-use id as it is.

    Most names and ids are ASCII Python identifiers (`call_...`, `toolu_...`, `read_file`),
    which three string methods confirm in a fraction of the regular expression's time;
    the expression decides the rest (hyphens, leading digits, anything invalid).
    """
    if value.isidentifier() and value.isascii() and len(value) <= 64:
        return True
    return _VALID_IDENTIFIER.fullmatch(value) is not None


def bedrock_identifier(value: str, *, attempt: int = 0) -> str:
    """`value` if Bedrock accepts it as a tool name or tool-use id, else a stable stand-in.

    `attempt` > 0 derives another stand-in for the rare name whose first one is taken.
    """
    if attempt == 0 and (
        # is_bedrock_identifier, its fast half inline: this runs for every tool-call id.
        (value.isidentifier() and value.isascii() and len(value) <= 64)
        or _VALID_IDENTIFIER.fullmatch(value)
    ):
        return value
    seed = value if attempt == 0 else f"{value}#{attempt}"
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    return f"{_DISALLOWED_CHAR.sub('_', value)[:_STEM_LENGTH]}_{digest}"


class ToolNames:
    """Bedrock tool names for the client's names, unique within one request.

    Built from every name the request mentions, so that a valid name is never changed and
    a stand-in never equals a name the client used.
    """

    def __init__(self, names: Iterable[str]) -> None:
        unique = dict.fromkeys(names)
        self._taken = {name for name in unique if is_bedrock_identifier(name)}
        # Valid names stay as they are; only the others need a stand-in.
        self._bedrock: dict[str, str] = {}
        for name in unique:
            if name in self._taken:
                self._bedrock[name] = name
            else:
                self.bedrock(name)

    def bedrock(self, name: str) -> str:
        """The Bedrock name for the client's `name`."""
        found = self._bedrock.get(name)
        if found is not None:
            return found
        if name in self._taken:
            result = name
        else:
            attempt = 0
            result = bedrock_identifier(name)
            while result in self._taken:
                attempt += 1
                result = bedrock_identifier(name, attempt=attempt)
            self._taken.add(result)
        self._bedrock[name] = result
        return result

    def fresh(self, name: str) -> str:
        """A Bedrock name derived from `name` for a tool of the gateway's own.

        It differs from every name the client used and every stand-in handed out, and it
        is not restorable: responses must never show it as a client's tool.
        """
        attempt = 0
        result = bedrock_identifier(name)
        while result in self._taken:
            attempt += 1
            result = bedrock_identifier(name, attempt=attempt)
        self._taken.add(result)
        return result

    def restored(self) -> dict[str, str]:
        """Bedrock name -> the client's name, for the names that had to change."""
        return {bedrock: name for name, bedrock in self._bedrock.items() if bedrock != name}


def function_tools(tools: Sequence[OpenAITool] | None) -> list[FunctionTool]:
    """The request's function tools; any other kind of tool is refused by name."""
    result: list[FunctionTool] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools or ()):
        if tool["type"] == "custom":
            raise UnsupportedParameterError(
                "Custom (free-form) tools are not supported on Bedrock; "
                "declare a function tool with a JSON schema instead.",
                param=f"tools[{i}]",
            )
        name = tool["function"]["name"]
        if name in seen:
            raise InvalidRequestError(
                f"Tool names must be unique; '{name}' is declared twice.",
                param=f"tools[{i}].function.name",
            )
        seen.add(name)
        result.append(tool)
    return result


def request_tool_names(req: ChatCompletionRequest, tools: Sequence[FunctionTool]) -> list[str]:
    """Every tool name the request mentions: its tools, `tool_choice`, and past calls."""
    names = [tool["function"]["name"] for tool in tools]
    if isinstance(req.tool_choice, NamedToolChoice):
        names.append(req.tool_choice.function.name)
    for message in req.messages:
        if message["role"] == "assistant":
            for call in message.get("tool_calls") or ():
                if call["type"] == "function":
                    names.append(call["function"]["name"])
    return names


def tool_config(
    tools: Sequence[FunctionTool],
    tool_choice: OpenAIToolChoice | None,
    names: ToolNames,
    *,
    history_has_tool_blocks: bool,
    cache: CacheMarks,
    strict_tools: bool = False,
) -> ToolConfiguration | None:
    """The Converse `toolConfig` for the request's tools, or None when none is to be sent."""
    choice = _tool_choice(tool_choice, tools, names)
    if not tools or (tool_choice == "none" and not history_has_tool_blocks):
        return None
    definitions: list[Tool] = []
    for i, tool in enumerate(tools):
        definitions.append(_tool(tool, i, names, strict_tools=strict_tools))
        cache_control = tool.get("cache_control")
        if cache_control is not None:
            point = cache.requested(cache_control, f"tools[{i}]")
            if point is not None:
                definitions.append(point)  # type: ignore[arg-type]
    config: ToolConfiguration = {"tools": definitions}
    if choice is not None:
        config["toolChoice"] = choice
    return config


def _tool(tool: FunctionTool, index: int, names: ToolNames, *, strict_tools: bool) -> Tool:
    function = tool["function"]
    schema = function.get("parameters")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    elif schema["type"] != "object":
        raise InvalidRequestError(
            "A tool's parameters must be a JSON schema of type 'object'.",
            param=f"tools[{index}].function.parameters",
        )
    spec: ToolSpecification = {
        "name": names.bedrock(function["name"]),
        "inputSchema": {"json": schema},
    }
    description = function.get("description")
    if description:
        spec["description"] = description
    if strict_tools and function.get("strict"):
        spec["strict"] = True
    return {"toolSpec": spec}


def _tool_choice(
    choice: OpenAIToolChoice | None, tools: Sequence[FunctionTool], names: ToolNames
) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        if not tools and choice == "required":
            raise InvalidRequestError(
                "tool_choice 'required' needs at least one tool in 'tools'.", param="tool_choice"
            )
        return TOOL_CHOICE_MODES[choice]
    if isinstance(choice, (NamedCustomToolChoice, AllowedToolsChoice)):
        raise UnsupportedParameterError(
            f"tool_choice of type '{choice.type}' has no Bedrock equivalent; "
            "use 'auto', 'required', 'none' or a named function.",
            param="tool_choice",
        )
    wanted = choice.function.name
    if not any(tool["function"]["name"] == wanted for tool in tools):
        raise InvalidRequestError(
            f"tool_choice names the function '{wanted}', which is not in 'tools'.",
            param="tool_choice",
        )
    return {"tool": {"name": names.bedrock(wanted)}}


def disable_parallel_tool_use(
    additional: dict[str, Any], *, model_id: str, tool_config: Mapping[str, Any] | None
) -> bool:
    """Add Anthropic's `disable_parallel_tool_use` where it is safe (see the module docs)."""
    if (
        tool_config is None
        or "toolChoice" in tool_config
        or "anthropic." not in model_id
        or "tool_choice" in additional
    ):
        return False
    additional["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
    return True
