"""Pydantic models of the OpenAI chat completions request (embeddings: `openai_embeddings`).

The models check shapes and types only; what Bedrock can honour is decided by
`gateway.translate.openai_chat.request`, which names the offending parameter when it cannot. Keeping
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
* The nodes a request has many of are `TypedDict`s, still validated by pydantic (same
  types, same discriminators, unknown keys dropped the same way): the messages, their
  tool calls, and the tool definitions. Pydantic's cost per model instance dominated an
  agent-sized request (`tests.benchmarks.agent`: 60 messages with tool calls and results,
  25 tools): validating it took ~275 us with models and ~112 us with these dicts, and the
  whole parse stage per request fell from ~330 to ~160 us of CPU. Readers index them
  (`message["role"]`) and read an optional key with `.get(...)`, since a key the client
  left out is absent rather than None. Content parts and the rest stay models: a request
  has few of them.
* A parameter the gateway acts on is typed as tightly as OpenAI documents it (`Literal`
  values, ranges). A parameter that is accepted and not forwarded (`service_tier`,
  `prompt_cache_retention`, ...) is typed loosely, so a value OpenAI adds next month does
  not turn into a 400 for a request the gateway would have served the same way.

Fields that are not OpenAI's, accepted because clients send them:

* `cache_control` (`{"type": "ephemeral"}`) on text, image and file parts and on tool
  definitions: Anthropic's prompt-caching marker, which Anthropic-compatible clients put
  on OpenAI-shaped requests too. The translator turns it into a Converse `cachePoint`.
* `reasoning_content`, `reasoning_signature` and `reasoning_redacted` on assistant
  messages: the reasoning fields our responses carry (see `gateway.translate.openai_chat.response`),
  sent back so that a conversation with extended thinking can continue.

`validation_error_param` (defined in `gateway.schemas.errors`, re-exported here) turns a
`pydantic.ValidationError` into the `param` path and message of an OpenAI-shaped 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from gateway.schemas.errors import validation_error_param

__all__ = [
    "AllowedToolsChoice",
    "AssistantContentPart",
    "AssistantMessage",
    "CacheControl",
    "ChatCompletionRequest",
    "CustomTool",
    "CustomToolCall",
    "DeveloperMessage",
    "FilePart",
    "FunctionDefinition",
    "FunctionMessage",
    "FunctionTool",
    "FunctionToolCall",
    "ImagePart",
    "InputAudioPart",
    "JSONObjectFormat",
    "JSONSchema",
    "JSONSchemaFormat",
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


# The TypedDicts' configuration: unknown keys dropped, as `_Nested` does.
_dict = with_config(ConfigDict(extra="ignore"))


# -- content parts -------------------------------------------------------------------------


class CacheControl(_Nested):
    """Anthropic's cache breakpoint: everything up to the marked item may be cached."""

    type: Literal["ephemeral"]
    ttl: str | None = None  # "5m" or "1h"; the translator decides what Bedrock can honour


class TextPart(_Nested):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None


class ImageURL(_Nested):
    url: str  # an https URL or a data URL (`data:image/png;base64,...`)
    detail: str | None = None  # a hint for OpenAI's resizer; Bedrock has no equivalent


class ImagePart(_Nested):
    type: Literal["image_url"]
    image_url: ImageURL
    cache_control: CacheControl | None = None


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
    cache_control: CacheControl | None = None


class RefusalPart(_Nested):
    type: Literal["refusal"]
    refusal: str


UserContentPart = Annotated[
    TextPart | ImagePart | InputAudioPart | FilePart, Field(discriminator="type")
]
# Images and files are parsed in assistant messages only so that the translator can refuse
# them with a message that says why, rather than pydantic's "tag does not match".
AssistantContentPart = Annotated[
    TextPart | RefusalPart | ImagePart | FilePart, Field(discriminator="type")
]


# -- messages ------------------------------------------------------------------------------


@_dict
class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@_dict
class FunctionToolCall(TypedDict):
    type: Literal["function"]
    id: str
    function: FunctionCall


@_dict
class CustomCall(TypedDict):
    name: str
    input: str


@_dict
class CustomToolCall(TypedDict):
    type: Literal["custom"]
    id: str
    custom: CustomCall


ToolCall = Annotated[FunctionToolCall | CustomToolCall, Field(discriminator="type")]


@_dict
class SystemMessage(TypedDict):
    role: Literal["system"]
    content: str | list[TextPart]
    name: NotRequired[str | None]


@_dict
class DeveloperMessage(TypedDict):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: NotRequired[str | None]


@_dict
class UserMessage(TypedDict):
    role: Literal["user"]
    content: str | list[UserContentPart]
    name: NotRequired[str | None]


@_dict
class AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: NotRequired[str | list[AssistantContentPart] | None]
    refusal: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCall] | None]
    function_call: NotRequired[FunctionCall | None]  # legacy; the translator rejects it
    name: NotRequired[str | None]
    reasoning_content: NotRequired[str | None]
    reasoning_signature: NotRequired[str | None]
    reasoning_redacted: NotRequired[list[str] | None]  # standard base64, one entry per block


@_dict
class ToolMessage(TypedDict):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


@_dict
class FunctionMessage(TypedDict):
    """The legacy `function` role: parsed so the translator can reject it by name."""

    role: Literal["function"]
    content: NotRequired[str | None]
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


@_dict
class FunctionDefinition(TypedDict):
    name: str
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]  # JSON Schema; omitted: "no arguments"
    strict: NotRequired[bool | None]


@_dict
class FunctionTool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition
    cache_control: NotRequired[CacheControl | None]


@_dict
class CustomToolDefinition(TypedDict):
    name: str
    description: NotRequired[str | None]
    format: NotRequired[dict[str, Any] | None]


@_dict
class CustomTool(TypedDict):
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
