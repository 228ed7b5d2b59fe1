"""Responses tools and `tool_choice` as chat-completions tools, and what is left out.

Why a module of its own: agent clients send tools the gateway cannot run, and a Responses
tool list has a shape of its own (flat functions, namespaces); everything that decides
what the model sees, and how its calls map back, is here.

* `function` tools -> chat function tools (`strict` kept; the chat pair decides what
  Bedrock honours).
* `namespace` tools (a named group of functions; Codex sends its sub-agent tools so) are
  flattened: each member becomes a function named `<namespace>__<name>`, which fits
  Bedrock's tool-name alphabet, so the model sees one flat list. `Tools.namespaced` maps
  each flattened name back to (namespace, name), and the response translators return a
  call to it as `function_call` with `name` and `namespace`, as OpenAI does. A call sent
  back as input with a `namespace` is flattened the same way.
* Hosted tools (`HOSTED_TOOLS`: web search, file search, code interpreter, computer use,
  image generation, MCP, ...) run on OpenAI's servers; the gateway cannot run them. Agent
  clients send them by default (Codex always sends `web_search`), so refusing them would
  refuse every such client: they are left out of what the model sees and their types
  listed in `Tools.dropped`, which the surface sends as `x-gateway-dropped-tools`.
* `custom` (free-form) tools, such as a grammar-constrained `apply_patch`: Converse tools
  take JSON, so each becomes a function of one string argument
  (`CUSTOM_INPUT`), the format's grammar written into its description (Converse has no
  constrained decoding: the model is asked, not forced). `Tools.custom` names them; the
  response translators return their calls as `custom_tool_call` items with the raw
  `input`, and such items sent back as input become the same function calls.
* Any other tool type is a 400 naming it: the client would expect the model to be able
  to call it.
* `tool_choice`: "auto", "required", "none" as in chat; `{"type": "function" | "custom",
  "name"}` (with `namespace` for a namespaced tool) -> a named function; a hosted tool type
  -> 400 naming the tool (it is not available, so it cannot be forced); anything else
  (`allowed_tools`, `mcp`) -> 400 naming `tool_choice`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai_responses import (
    CustomToolDef,
    FunctionToolDef,
    NamespaceToolDef,
    OtherTool,
    ToolDef,
)

__all__ = [
    "HOSTED_TOOLS",
    "NAMESPACE_SEPARATOR",
    "Tools",
    "chat_tool_choice",
    "chat_tools",
    "flat_name",
]

NAMESPACE_SEPARATOR: Final = "__"

# Tool type -> what it is, for the message of a forced `tool_choice`. OpenAI runs these.
HOSTED_TOOLS: Final[Mapping[str, str]] = {
    "web_search": "web search",
    "web_search_preview": "web search",
    "web_search_2025_08_26": "web search",
    "web_search_preview_2025_03_11": "web search",
    "file_search": "file search",
    "code_interpreter": "the code interpreter",
    "computer_use": "computer use",
    "computer_use_preview": "computer use",
    "computer": "computer use",
    "image_generation": "image generation",
    "mcp": "remote MCP servers",
    "local_shell": "the hosted local shell",
    "shell": "the hosted shell",
    "apply_patch": "the hosted apply_patch tool",
    "tool_search": "tool search",
}


def flat_name(namespace: str, name: str) -> str:
    """The one name a namespaced function has for Bedrock."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


@dataclass(slots=True)
class Tools:
    chat: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # input path of each chat tool
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    custom: set[str] = field(default_factory=set)  # (flattened) names of free-form tools
    dropped: list[str] = field(default_factory=list)  # hosted tool types left out


def chat_tools(tools: Sequence[ToolDef] | None) -> Tools:
    """The chat tools for the request's `tools`; see the module docstring."""
    out = Tools()
    for i, tool in enumerate(tools or ()):
        path = f"tools[{i}]"
        match tool:
            case FunctionToolDef():
                out.chat.append(_function(tool, tool.name))
                out.paths.append(path)
            case CustomToolDef():
                out.chat.append(_custom(tool, tool.name, path))
                out.custom.add(tool.name)
                out.paths.append(path)
            case NamespaceToolDef():
                for j, member in enumerate(tool.tools):
                    member_path = f"{path}.tools[{j}]"
                    if isinstance(member, OtherTool):
                        raise UnsupportedParameterError(
                            "Namespace tools may hold function and custom tools only, not "
                            f"'{member.type}'.",
                            param=f"{member_path}.type",
                        )
                    name = flat_name(tool.name, member.name)
                    out.namespaced[name] = (tool.name, member.name)
                    if isinstance(member, CustomToolDef):
                        out.chat.append(_custom(member, name, member_path))
                        out.custom.add(name)
                    else:
                        out.chat.append(_function(member, name))
                    out.paths.append(member_path)
            case OtherTool(type=kind) if kind in HOSTED_TOOLS:
                if kind not in out.dropped:
                    out.dropped.append(kind)
            case OtherTool():
                raise UnsupportedParameterError(
                    f"Tools of type '{tool.type}' are not supported on Bedrock; declare a "
                    "function tool with a JSON schema instead.",
                    param=f"{path}.type",
                )
    return out


def _function(tool: FunctionToolDef, name: str) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


# The one argument a custom tool's stand-in function takes.
CUSTOM_INPUT: Final = "input"


def _custom(tool: CustomToolDef, name: str, path: str) -> dict[str, Any]:
    """A free-form tool as a function of one string, which is the free-form input; the
    format (a grammar) is given to the model in the description, as Converse has no
    constrained decoding. Its calls come back as `custom_tool_call` items."""
    fmt = tool.format or {"type": "text"}
    kind = fmt.get("type")
    about = "The raw input for this tool, exactly as the tool expects it (not JSON-encoded)."
    if kind == "grammar":
        syntax, definition = fmt.get("syntax"), fmt.get("definition")
        if not isinstance(definition, str) or not definition.strip():
            raise InvalidRequestError(
                "A grammar format needs its 'definition'.", param=f"{path}.format.definition"
            )
        about += f" It must match this {syntax or 'lark'} grammar:\n{definition}"
    elif kind != "text":
        raise UnsupportedParameterError(
            f"Custom tool formats of type '{kind}' are not supported; use 'text' or 'grammar'.",
            param=f"{path}.format.type",
        )
    function: dict[str, Any] = {
        "name": name,
        "parameters": {
            "type": "object",
            "properties": {CUSTOM_INPUT: {"type": "string", "description": about}},
            "required": [CUSTOM_INPUT],
            "additionalProperties": False,
        },
    }
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """The chat `tool_choice` for a Responses one; see the module docstring."""
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "required", "none"):
            raise InvalidRequestError(
                "tool_choice must be 'auto', 'required', 'none' or an object.",
                param="tool_choice",
            )
        return choice
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str):
            raise InvalidRequestError(
                f"A {kind} tool_choice needs the tool's 'name'.", param="tool_choice.name"
            )
        namespace = choice.get("namespace")
        if isinstance(namespace, str):
            name = flat_name(namespace, name)
        return {"type": "function", "function": {"name": name}}
    if isinstance(kind, str) and kind in HOSTED_TOOLS:
        raise UnsupportedParameterError(
            f"tool_choice forces the hosted tool '{kind}' ({HOSTED_TOOLS[kind]}), which the "
            "gateway cannot run: it is left out of the tools the model sees.",
            param="tool_choice",
        )
    raise UnsupportedParameterError(
        f"tool_choice of type '{kind}' has no Bedrock equivalent; use 'auto', 'required', "
        "'none' or a named function.",
        param="tool_choice",
    )
