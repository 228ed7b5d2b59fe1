"""Pydantic models of the OpenAI requests the gateway accepts: chat completions and embeddings.

The models check shapes and types only; what Bedrock can honour is decided by
`gateway.translate.request`, which names the offending parameter when it cannot. Keeping
the two apart lets the models stay cheap (they run once per request on the hot path: no
validators, `Literal` discriminators so pydantic picks a union member by one key lookup)
and keeps every Bedrock rule in one place.

Conventions:

* The top-level request keeps unknown fields (`extra="allow"`). The OpenAI SDK sends
  `extra_body` entries as top-level fields (`top_k`, `additional_model_request_fields`,
  `thinking`), and the translator must see them to forward or reject them, never drop
  them silently.
* Nested models ignore unknown keys: clients echo whole assistant messages back
  (`refusal`, `annotations`, `audio`, ...) and OpenAI keeps adding keys such as
  `prompt_cache_breakpoint` to content parts.
* A parameter the gateway acts on is typed as tightly as OpenAI documents it (`Literal`
  values, ranges). A parameter that is accepted and not forwarded (`service_tier`,
  `prompt_cache_retention`, ...) is typed loosely, so a value OpenAI adds next month does
  not turn into a 400 for a request the gateway would have served the same way.

`validation_error_param` turns a `pydantic.ValidationError` into the `param` path and
message of an OpenAI-shaped 400.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AllowedToolsChoice",
    "AssistantContentPart",
    "AssistantMessage",
    "ChatCompletionRequest",
    "CustomTool",
    "CustomToolCall",
    "DeveloperMessage",
    "EmbeddingRequest",
    "FilePart",
    "FunctionDefinition",
    "FunctionMessage",
    "FunctionTool",
    "FunctionToolCall",
    "ImagePart",
    "InputAudioPart",
    "Message",
    "NamedCustomToolChoice",
    "NamedToolChoice",
    "RefusalPart",
    "ResponseFormat",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolMessage",
    "UserContentPart",
    "UserMessage",
    "validation_error_param",
]


class _Nested(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- content parts -------------------------------------------------------------------------


class TextPart(_Nested):
    type: Literal["text"]
    text: str


class ImageURL(_Nested):
    url: str  # an https URL or a data URL (`data:image/png;base64,...`)
    detail: str | None = None  # a hint for OpenAI's resizer; Bedrock has no equivalent


class ImagePart(_Nested):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Nested):
    data: str  # base64
    format: str


class InputAudioPart(_Nested):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(_Nested):
    file_data: str | None = None  # a data URL
    filename: str | None = None
    file_id: str | None = None  # an id in OpenAI's file store, meaningless to Bedrock


class FilePart(_Nested):
    type: Literal["file"]
    file: FileData


class RefusalPart(_Nested):
    type: Literal["refusal"]
    refusal: str


UserContentPart = Annotated[
    TextPart | ImagePart | InputAudioPart | FilePart, Field(discriminator="type")
]
AssistantContentPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


# -- messages ------------------------------------------------------------------------------


class FunctionCall(_Nested):
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class FunctionToolCall(_Nested):
    type: Literal["function"]
    id: str
    function: FunctionCall


class CustomCall(_Nested):
    name: str
    input: str


class CustomToolCall(_Nested):
    type: Literal["custom"]
    id: str
    custom: CustomCall


ToolCall = Annotated[FunctionToolCall | CustomToolCall, Field(discriminator="type")]


class SystemMessage(_Nested):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Nested):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Nested):
    role: Literal["user"]
    content: str | list[UserContentPart]
    name: str | None = None


class AssistantMessage(_Nested):
    role: Literal["assistant"]
    content: str | list[AssistantContentPart] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None  # legacy; the translator rejects it
    name: str | None = None


class ToolMessage(_Nested):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


class FunctionMessage(_Nested):
    """The legacy `function` role: parsed so the translator can reject it by name."""

    role: Literal["function"]
    content: str | None = None
    name: str


Message = Annotated[
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage,
    Field(discriminator="role"),
]


# -- tools ---------------------------------------------------------------------------------


class FunctionDefinition(_Nested):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema; omitted means "no arguments"
    strict: bool | None = None


class FunctionTool(_Nested):
    type: Literal["function"]
    function: FunctionDefinition


class CustomToolDefinition(_Nested):
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class CustomTool(_Nested):
    type: Literal["custom"]
    custom: CustomToolDefinition


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class ToolName(_Nested):
    name: str


class NamedToolChoice(_Nested):
    type: Literal["function"]
    function: ToolName


class NamedCustomToolChoice(_Nested):
    type: Literal["custom"]
    custom: ToolName


class AllowedTools(_Nested):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class AllowedToolsChoice(_Nested):
    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[
        NamedToolChoice | NamedCustomToolChoice | AllowedToolsChoice,
        Field(discriminator="type"),
    ]
)


# -- other parameters ----------------------------------------------------------------------


class TextFormat(_Nested):
    type: Literal["text"]


class JSONObjectFormat(_Nested):
    type: Literal["json_object"]


class JSONSchema(_Nested):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JSONSchemaFormat(_Nested):
    type: Literal["json_schema"]
    json_schema: JSONSchema


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")
]


class StreamOptions(_Nested):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class AudioOutput(_Nested):
    format: str
    voice: str | dict[str, Any]


class Prediction(_Nested):
    type: Literal["content"]
    content: str | list[TextPart]


class WebSearchOptions(_Nested):
    search_context_size: str | None = None
    user_location: dict[str, Any] | None = None


class Moderation(_Nested):
    model: str
    policy: dict[str, Any] | None = None


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


# -- requests ------------------------------------------------------------------------------


class ChatCompletionRequest(BaseModel):
    """The body of `POST /v1/chat/completions`, every parameter of OpenAI's reference.

    `stop` takes any number of sequences although OpenAI caps it at 4: Bedrock accepts up
    to 2500, and refusing what Bedrock can honour would help nobody.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)

    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | Annotated[list[str], Field(max_length=2500)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None

    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    n: int | None = Field(default=None, ge=1, le=128)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, int] | None = None
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    audio: AudioOutput | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    prediction: Prediction | None = None
    web_search_options: WebSearchOptions | None = None
    moderation: Moderation | None = None
    reasoning_effort: ReasoningEffort | None = None
    verbosity: Literal["low", "medium", "high"] | None = None

    store: bool | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None

    functions: list[FunctionDefinition] | None = None  # legacy form of `tools`
    function_call: Literal["none", "auto"] | ToolName | None = None  # legacy `tool_choice`


class EmbeddingRequest(BaseModel):
    """The body of `POST /v1/embeddings`.

    Unknown fields are kept, as for chat, so the handler can reject or forward them by name.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=2048)]
    )
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


# -- validation errors ---------------------------------------------------------------------


def validation_error_param(exc: pydantic.ValidationError) -> tuple[str | None, str]:
    """The OpenAI `param` path and a short message for the most telling error in `exc`.

    Pydantic's `loc` names union members as well as fields: a bad user message content is
    `("messages", 0, "user", "content", "str")`, where `"user"` is the role tag and
    `"str"` the member tried. Clients know only the JSON path, `messages[0].content`, so
    the location is walked along the model's own annotations and member labels are left
    out. When a union fails, every member reports an error; the deepest one that is not a
    plain type mismatch is the member the client meant (a list of parts with a bad part,
    not "Input should be a valid string"). `param` is None when the body itself is wrong
    (not JSON, or not an object).
    """
    root: Any = (
        EmbeddingRequest if exc.title == EmbeddingRequest.__name__ else ChatCompletionRequest
    )
    best: tuple[int, int] = (-1, -1)
    param: str | None = None
    message = ""
    for error in exc.errors(include_url=False):
        path = _json_path(root, error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The failing key is the discriminator, which pydantic leaves out of `loc`.
            key = str(error.get("ctx", {}).get("discriminator", "")).strip("'\"")
            path = f"{path}.{key}" if path else key
        # A type mismatch only says "not this union member": any other error outranks it.
        mismatch = error["type"].endswith("_type") or error["type"] == "literal_error"
        rank = (len(path or ""), 0 if mismatch else 1)
        if rank > best:
            best, param, message = rank, path, error["msg"]
    if param is None:
        return None, message
    return param, f"Invalid value for '{param}': {message}"


def _json_path(root: Any, loc: tuple[int | str, ...]) -> str | None:
    path = ""
    current: Any = root
    for item in loc:
        current = _unwrap(current)
        members = _union_members(current)
        if members is not None and isinstance(item, str):
            current = _member_for_label(members, item)
            continue
        path += f"[{item}]" if isinstance(item, int) else f".{item}" if path else item
        current = _child_type(current, item)
    return path or None


def _unwrap(annotation: Any) -> Any:
    # Strip `Annotated[...]` and the `None` of an optional: pydantic puts neither in `loc`.
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    members = _union_members(annotation)
    if members is not None and len(members) == 1:
        return _unwrap(members[0])
    return annotation


def _union_members(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return None


def _member_for_label(members: list[Any], label: str) -> Any:
    # A discriminated union labels a member by its tag; a plain union by the member's type
    # name (`str`, `list[...]`, a model's class name, `tagged-union[...]` for a nested one).
    for member in map(_unwrap, members):
        nested = _union_members(member)
        if nested is not None:
            if label.startswith("tagged-union["):
                return member
            found = _member_for_label(nested, label)
            if found is not None:
                return found
        elif isinstance(member, type) and issubclass(member, BaseModel):
            if member.__name__ == label or any(
                typing.get_origin(f.annotation) is Literal
                and label in typing.get_args(f.annotation)
                for f in member.model_fields.values()
            ):
                return member
        elif (isinstance(member, type) and member.__name__ == label) or (
            typing.get_origin(member) is list and label.startswith("list[")
        ):
            return member
    return None


def _child_type(annotation: Any, item: int | str) -> Any:
    # The annotation one step down `loc`: a list item, a model field, or a dict value.
    origin = typing.get_origin(annotation)
    if isinstance(item, int):
        return typing.get_args(annotation)[0] if origin is list else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        field = fields.get(item) or next((f for f in fields.values() if f.alias == item), None)
        return None if field is None else field.annotation
    return typing.get_args(annotation)[1] if origin is dict else None
