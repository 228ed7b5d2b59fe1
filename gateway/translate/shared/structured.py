"""`response_format` (JSON mode and structured outputs): natively, or as a forced tool.

Native (`structured_output: native` models, such as Claude Sonnet 4.5 and later): a
`json_schema` format becomes Converse `outputConfig.textFormat` (`native_text_format`):
type "json_schema", the schema serialised as a JSON string (the service model's
`JsonSchemaDefinition.schema` is a string), `name` and `description` as given. Bedrock
then constrains decoding to the schema and the answer is plain text, returned as the
content as it is. `json_object` has no schema to enforce, so it takes the tool below on
every model.

Everywhere else the only way to make a model answer with JSON that follows a schema is
a tool: the schema becomes
the tool's `inputSchema`, the model is made to call it, and the response translators turn
the call's input back into the message `content` (a compact JSON string, no tool call,
`finish_reason` "stop"), which is what OpenAI clients read, and what
`client.chat.completions.parse()` validates into its Pydantic model.

The tool ("the response tool"):

* `json_schema`: named after `json_schema.name` (made Bedrock-safe and unique among the
  request's tool names by `ToolNames.fresh`), its input schema the given `schema`. A
  schema with no top-level `type` gets `"object"`; any other type is a 400 naming
  `response_format.json_schema.schema`, since a tool input is always an object (OpenAI
  asks the same of structured-output schemas). `strict` is accepted and not enforced:
  Bedrock has no strict mode; the schema is still sent, and models follow it closely.
* `json_object`: named `json_response`, input schema `{"type": "object"}`.
* Its description tells the model to give its final answer through it, followed by
  `json_schema.description` when there is one.
* It comes last in the tool list, after the client's tools and their cache points, so a
  prompt cache over the client's tools keeps hitting.

`toolChoice`, together with the client's own tools and `tool_choice`:

* no client tools, or `tool_choice` "none": `{"tool": <response tool>}`, the answer must
  be the JSON. (With "none" and tool calls in the history the client's tools are still
  listed, as Bedrock requires, but the response tool is the one forced.)
* client tools with `tool_choice` "auto", "required" or none given: `{"any": {}}`. The
  model must call a tool: one of the client's (returned as `tool_calls`, finish_reason
  "tool_calls", for the client to run and come back) or the response tool (returned as
  the JSON content). It cannot end with plain text, which would not parse. "required"
  thus also counts the response tool: Converse cannot force "any tool but this one".
* client tools with a named `tool_choice`: that choice stands; the response tool is
  listed for the turn after.
* while thinking is on, no `toolChoice` at all: Anthropic refuses forced tool use with
  thinking. The model is asked, not forced, to answer through the tool; if it answers in
  text, the text is returned as it is.

The response side needs the tool's Bedrock name: `ConverseCall.structured_output_tool`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from gateway.errors import InvalidRequestError
from gateway.schemas.converse import (
    JsonSchemaDefinition,
    OutputFormat,
    Tool,
    ToolConfiguration,
    ToolSpecification,
)
from gateway.schemas.openai import JSONObjectFormat, JSONSchemaFormat, NamedToolChoice
from gateway.schemas.openai import ToolChoice as OpenAIToolChoice
from gateway.translate.shared.tools import ToolNames

__all__ = [
    "JSON_OBJECT_TOOL",
    "RESPONSE_TOOL_DESCRIPTION",
    "ResponseTool",
    "native_text_format",
    "response_tool",
    "with_response_tool",
]

JSON_OBJECT_TOOL: Final = "json_response"
RESPONSE_TOOL_DESCRIPTION: Final = (
    "Give your final answer by calling this tool. Its input is the answer itself, as JSON "
    "that follows the input schema; write nothing else."
)


@dataclass(frozen=True, slots=True)
class ResponseTool:
    name: str  # the Bedrock name, for toolChoice and the response translators
    tool: Tool


def response_tool(fmt: JSONObjectFormat | JSONSchemaFormat, names: ToolNames) -> ResponseTool:
    """The response tool for `response_format` `fmt`; see the module docstring."""
    description = RESPONSE_TOOL_DESCRIPTION
    if isinstance(fmt, JSONObjectFormat):
        name = names.fresh(JSON_OBJECT_TOOL)
        schema: dict[str, Any] = {"type": "object"}
    else:
        name = names.fresh(fmt.json_schema.name)
        schema = _object_schema(fmt.json_schema.schema_)
        if fmt.json_schema.description:
            description = f"{description} {fmt.json_schema.description}"
    spec: ToolSpecification = {
        "name": name,
        "description": description,
        "inputSchema": {"json": schema},
    }
    return ResponseTool(name=name, tool={"toolSpec": spec})


def native_text_format(fmt: JSONSchemaFormat) -> OutputFormat:
    """Converse `outputConfig.textFormat` for a `json_schema` response format."""
    schema = _object_schema(fmt.json_schema.schema_)
    definition: JsonSchemaDefinition = {
        # Compact and in the client's key order: the same request gives the same bytes.
        "schema": json.dumps(schema, separators=(",", ":"), ensure_ascii=False),
        "name": fmt.json_schema.name,
    }
    if fmt.json_schema.description:
        definition["description"] = fmt.json_schema.description
    return {"type": "json_schema", "structure": {"jsonSchema": definition}}


def _object_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"type": "object"}
    if "type" not in schema:
        return {"type": "object", **schema}
    if schema["type"] != "object":
        raise InvalidRequestError(
            'The response_format schema must describe a JSON object ("type": "object"); '
            f"got type {schema['type']!r}.",
            param="response_format.json_schema.schema",
        )
    return schema


def with_response_tool(
    config: ToolConfiguration | None,
    response: ResponseTool,
    *,
    tool_choice: OpenAIToolChoice | None,
    thinking: bool,
) -> ToolConfiguration:
    """`config` (the client's tools, if sent) with the response tool and its `toolChoice`."""
    result: ToolConfiguration = {"tools": [*(config or {"tools": []})["tools"], response.tool]}
    if thinking:
        return result
    if config is None or tool_choice == "none":
        result["toolChoice"] = {"tool": {"name": response.name}}
    elif isinstance(tool_choice, NamedToolChoice) and "toolChoice" in config:
        result["toolChoice"] = config["toolChoice"]
    else:
        result["toolChoice"] = {"any": {}}
    return result
