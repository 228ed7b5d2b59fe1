"""Pydantic models of `POST /v1/responses` (the OpenAI Responses API) as the gateway reads it.

Same conventions as `gateway.schemas.openai`: shapes and types only, Bedrock rules live in
`gateway.translate.openai_responses`; the top-level request keeps unknown fields
(`extra="allow"`, so the translator can forward or refuse `extra_body` entries by name);
nested models ignore unknown keys, because clients echo whole output items back as input
(`status`, `annotations`, `logprobs`, ...).

What real clients send, and the models therefore accept:

* every input item may carry an `id` (`msg_...`, `fc_...`, `rs_...`), meaningless to us;
* a message may omit `type` (the Agents SDK sends `{"role", "content"}`), so an item with
  no `type` is a message;
* a function call's output may be a plain string or a list of content parts;
* a reasoning item comes back as `{type, id, summary, content: null, encrypted_content}`
  (Codex), `content` may be null.

Items and tools are unions discriminated by `type`, with a catch-all for the types the
gateway knows of but does not run (hosted tools, `item_reference`, ...): the translator
names those in its error or in `x-gateway-dropped-tools` rather than pydantic answering
with an unreadable union error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "ContentPart",
    "CustomToolCallItem",
    "CustomToolCallOutputItem",
    "CustomToolDef",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionToolDef",
    "InputFilePart",
    "InputImagePart",
    "InputItem",
    "InputTextPart",
    "MessageItem",
    "NamespaceToolDef",
    "OtherItem",
    "OtherPart",
    "OtherTool",
    "OutputTextPart",
    "ReasoningItem",
    "ReasoningOptions",
    "RefusalPart",
    "ResponsesRequest",
    "TextOptions",
    "ToolDef",
]


class _Nested(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- content parts -------------------------------------------------------------------------


class InputTextPart(_Nested):
    type: Literal["input_text"]
    text: str


class OutputTextPart(_Nested):
    type: Literal["output_text"]
    text: str


class RefusalPart(_Nested):
    type: Literal["refusal"]
    refusal: str


class InputImagePart(_Nested):
    type: Literal["input_image"]
    image_url: str | None = None  # a data URL or an https URL
    file_id: str | None = None  # OpenAI's file store: nothing Bedrock can read
    detail: str | None = None


class InputFilePart(_Nested):
    type: Literal["input_file"]
    file_data: str | None = None  # a data URL (or bare base64, as the SDK documents it)
    filename: str | None = None
    file_id: str | None = None
    file_url: str | None = None


class OtherPart(_Nested):
    """A part type the gateway does not translate (`input_audio`, ...): refused by name."""

    type: str


def _part_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    known = ("input_text", "output_text", "refusal", "input_image", "input_file")
    return kind if kind in known else "other"


ContentPart = Annotated[
    Annotated[InputTextPart, Tag("input_text")]
    | Annotated[OutputTextPart, Tag("output_text")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[InputImagePart, Tag("input_image")]
    | Annotated[InputFilePart, Tag("input_file")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(_part_type),
]


# -- input items ---------------------------------------------------------------------------


class MessageItem(_Nested):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None


class FunctionCallItem(_Nested):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    namespace: str | None = None
    id: str | None = None


class FunctionCallOutputItem(_Nested):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None


class CustomToolCallItem(_Nested):
    type: Literal["custom_tool_call"]
    call_id: str
    name: str
    input: str
    namespace: str | None = None
    id: str | None = None


class CustomToolCallOutputItem(_Nested):
    type: Literal["custom_tool_call_output"]
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None


class SummaryText(_Nested):
    type: str = "summary_text"
    text: str


class ReasoningText(_Nested):
    type: str = "reasoning_text"
    text: str


class ReasoningItem(_Nested):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None


class OtherItem(_Nested):
    """An item type the gateway cannot replay (`item_reference`, hosted tool calls, ...)."""

    type: str


def _item_type(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind is None and "role" in value:
            return "message"
    else:
        kind = getattr(value, "type", None)
    known = (
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "reasoning",
    )
    return kind if kind in known else "other"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_type),
]


# -- tools ---------------------------------------------------------------------------------


class FunctionToolDef(_Nested):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomToolDef(_Nested):
    """A free-form tool: the model writes raw text (optionally in a grammar), not JSON."""

    type: Literal["custom"]
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None  # {"type": "text"} or {"type": "grammar", ...}


class OtherTool(_Nested):
    """A hosted tool (`web_search`, `mcp`, ...) or a custom tool: not run by the gateway."""

    type: str
    name: str | None = None


class NamespaceToolDef(_Nested):
    """A named group of functions (Codex sends its sub-agent tools this way)."""

    type: Literal["namespace"]
    name: str
    description: str | None = None
    tools: list[FunctionToolDef | CustomToolDef | OtherTool] = Field(default_factory=list)


def _tool_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("function", "namespace", "custom") else "other"


ToolDef = Annotated[
    Annotated[FunctionToolDef, Tag("function")]
    | Annotated[NamespaceToolDef, Tag("namespace")]
    | Annotated[CustomToolDef, Tag("custom")]
    | Annotated[OtherTool, Tag("other")],
    Discriminator(_tool_type),
]


# -- options -------------------------------------------------------------------------------


class TextOptions(_Nested):
    format: dict[str, Any] | None = None  # {"type": "text" | "json_object" | "json_schema", ...}
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningOptions(_Nested):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: str | None = None  # "auto" | "concise" | "detailed": accepted, see the guide
    generate_summary: str | None = None  # its deprecated name


class ResponsesRequest(BaseModel):
    """The body of `POST /v1/responses`, every parameter of OpenAI's reference."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: Annotated[str, Field(min_length=1)] | list[InputItem] | None = None
    instructions: str | None = None

    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = Field(default=None, ge=1)

    text: TextOptions | None = None
    reasoning: ReasoningOptions | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    truncation: str | None = None
    include: list[str] | None = None

    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    prompt: dict[str, Any] | None = None
    client_metadata: dict[str, Any] | None = None  # Codex: its own bookkeeping
