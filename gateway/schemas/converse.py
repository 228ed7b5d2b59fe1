"""The Bedrock Converse wire format, as `TypedDict`s.

These mirror the shapes in botocore's service model for `bedrock-runtime` (API version
2023-09-30, in botocore 1.43.115+, which aiobotocore 3.10 allows), which is what botocore validates
our requests against and what it parses responses into. They describe the data only; the
translators in `gateway.translate` build and read them.

A few things the service model says that the types below cannot:

* Shapes marked as unions (`ContentBlock`, `SystemContentBlock`, `ToolChoice`,
  `ContentBlockDelta`, `ConverseStreamOutput`, ...) carry exactly one of their keys. They
  are declared `total=False`, and setting exactly one key is up to the code.
* `ToolName` and `ToolUseId` match `[a-zA-Z0-9_-]+`, 1..64 characters.
* `requestMetadata` has 1..16 entries; keys are 1..256 and values 0..256 characters of
  `[a-zA-Z0-9\\s:_@$#=/+,-.]`.
* Text in a system block must not be empty, and Bedrock rejects blank text blocks in
  messages too.
* `outputConfig.textFormat.structure.jsonSchema.schema` is the JSON schema as a JSON
  *string*, not an object; `outputConfig.effort` is low, medium, high, xhigh or max.

Streamed and buffered responses share `Message`, `TokenUsage` and `StopReason`, so the
response and stream translators agree on them by construction.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "AnyToolChoice",
    "AutoToolChoice",
    "CacheDetail",
    "CachePointBlock",
    "ContentBlock",
    "ContentBlockDelta",
    "ContentBlockDeltaEvent",
    "ContentBlockStart",
    "ContentBlockStartEvent",
    "ContentBlockStopEvent",
    "ConversationRole",
    "ConverseMetrics",
    "ConverseOutput",
    "ConverseRequest",
    "ConverseResponse",
    "ConverseStreamEvent",
    "ConverseStreamMetadataEvent",
    "DocumentBlock",
    "DocumentSource",
    "ImageBlock",
    "ImageSource",
    "InferenceConfiguration",
    "JsonSchemaDefinition",
    "Message",
    "MessageStartEvent",
    "MessageStopEvent",
    "ModelStreamErrorEvent",
    "OutputConfig",
    "OutputFormat",
    "OutputFormatStructure",
    "PerformanceConfiguration",
    "ReasoningContentBlock",
    "ReasoningContentBlockDelta",
    "ReasoningTextBlock",
    "ServiceTier",
    "ServiceTierType",
    "SpecificToolChoice",
    "StopReason",
    "StreamExceptionEvent",
    "SystemContentBlock",
    "TokenUsage",
    "Tool",
    "ToolChoice",
    "ToolConfiguration",
    "ToolInputSchema",
    "ToolResultBlock",
    "ToolResultContentBlock",
    "ToolSpecification",
    "ToolUseBlock",
    "ToolUseBlockDelta",
    "ToolUseBlockStart",
]

ConversationRole = Literal["user", "assistant"]

StopReason = Literal[
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop_sequence",
    "guardrail_intervened",
    "content_filtered",
    "malformed_model_output",
    "malformed_tool_use",
    "model_context_window_exceeded",
]


# -- content blocks ------------------------------------------------------------------------


class CachePointBlock(TypedDict):
    type: Literal["default"]
    ttl: NotRequired[Literal["5m", "1h"]]


class ImageSource(TypedDict, total=False):
    bytes: bytes


class ImageBlock(TypedDict):
    format: Literal["png", "jpeg", "gif", "webp"]
    source: ImageSource


class DocumentSource(TypedDict, total=False):
    bytes: bytes
    text: str


class DocumentBlock(TypedDict):
    # The name may only hold alphanumerics, single spaces, hyphens, parentheses and
    # square brackets; the model reads it, so it should be neutral.
    name: str
    format: NotRequired[Literal["pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"]]
    source: DocumentSource


class ToolUseBlock(TypedDict):
    toolUseId: str
    name: str
    input: Any  # a JSON value; Converse only produces and accepts objects here


class ToolResultContentBlock(TypedDict, total=False):
    text: str
    json: Any
    image: ImageBlock
    document: DocumentBlock


class ToolResultBlock(TypedDict):
    toolUseId: str
    content: list[ToolResultContentBlock]
    status: NotRequired[Literal["success", "error"]]


class ReasoningTextBlock(TypedDict):
    text: str
    signature: NotRequired[str]


class ReasoningContentBlock(TypedDict, total=False):
    reasoningText: ReasoningTextBlock
    redactedContent: bytes


class ContentBlock(TypedDict, total=False):
    text: str
    image: ImageBlock
    document: DocumentBlock
    toolUse: ToolUseBlock
    toolResult: ToolResultBlock
    reasoningContent: ReasoningContentBlock
    cachePoint: CachePointBlock
    citationsContent: dict[str, Any]  # only in responses


class Message(TypedDict):
    role: ConversationRole
    content: list[ContentBlock]


class SystemContentBlock(TypedDict, total=False):
    text: str
    cachePoint: CachePointBlock


# -- request -------------------------------------------------------------------------------


class InferenceConfiguration(TypedDict, total=False):
    maxTokens: int  # >= 1
    temperature: float  # 0..1
    topP: float  # 0..1
    stopSequences: list[str]  # up to 2500 non-empty strings


class ToolInputSchema(TypedDict):
    json: dict[str, Any]  # a JSON Schema whose top-level type is "object"


class ToolSpecification(TypedDict):
    name: str
    description: NotRequired[str]
    inputSchema: ToolInputSchema
    strict: NotRequired[bool]


class Tool(TypedDict, total=False):
    toolSpec: ToolSpecification
    cachePoint: CachePointBlock


class AutoToolChoice(TypedDict):
    pass


class AnyToolChoice(TypedDict):
    pass


class SpecificToolChoice(TypedDict):
    name: str


class ToolChoice(TypedDict, total=False):
    auto: AutoToolChoice
    any: AnyToolChoice
    tool: SpecificToolChoice


class ToolConfiguration(TypedDict):
    tools: list[Tool]  # at least one
    toolChoice: NotRequired[ToolChoice]


class PerformanceConfiguration(TypedDict):
    latency: Literal["standard", "optimized"]


ServiceTierType = Literal["priority", "default", "flex", "reserved"]


class ServiceTier(TypedDict):
    type: ServiceTierType


class JsonSchemaDefinition(TypedDict):
    schema: str  # the JSON schema, serialised
    name: NotRequired[str]
    description: NotRequired[str]


class OutputFormatStructure(TypedDict):
    jsonSchema: JsonSchemaDefinition


class OutputFormat(TypedDict):
    type: Literal["json_schema"]
    structure: OutputFormatStructure


class OutputConfig(TypedDict, total=False):
    textFormat: OutputFormat
    effort: str


class GuardrailConfiguration(TypedDict, total=False):
    """Converse `guardrailConfig`; `streamProcessingMode` only on ConverseStream."""

    guardrailIdentifier: str
    guardrailVersion: str
    trace: Literal["enabled", "disabled", "enabled_full"]
    streamProcessingMode: Literal["sync", "async"]


class ConverseRequest(TypedDict, total=False):
    """The keyword arguments of `converse` / `converse_stream`, without `modelId`."""

    messages: list[Message]
    system: list[SystemContentBlock]
    inferenceConfig: InferenceConfiguration
    toolConfig: ToolConfiguration
    additionalModelRequestFields: dict[str, Any]
    additionalModelResponseFieldPaths: list[str]
    requestMetadata: dict[str, str]
    performanceConfig: PerformanceConfiguration
    serviceTier: ServiceTier
    outputConfig: OutputConfig
    guardrailConfig: GuardrailConfiguration


# -- buffered response ---------------------------------------------------------------------


class ConverseOutput(TypedDict, total=False):
    message: Message


class CacheDetail(TypedDict):
    """Cache writes of one lifetime: `cacheDetails` splits `cacheWriteInputTokens` by TTL."""

    ttl: Literal["5m", "1h"]
    inputTokens: int


class TokenUsage(TypedDict):
    inputTokens: int
    outputTokens: int
    totalTokens: int
    cacheReadInputTokens: NotRequired[int]
    cacheWriteInputTokens: NotRequired[int]
    cacheDetails: NotRequired[list[CacheDetail]]


class ConverseMetrics(TypedDict):
    latencyMs: int


class ConverseResponse(TypedDict):
    output: ConverseOutput
    stopReason: StopReason
    usage: TokenUsage
    metrics: ConverseMetrics
    additionalModelResponseFields: NotRequired[Any]
    trace: NotRequired[dict[str, Any]]
    performanceConfig: NotRequired[PerformanceConfiguration]
    serviceTier: NotRequired[ServiceTier]


# -- stream events -------------------------------------------------------------------------


class MessageStartEvent(TypedDict):
    role: ConversationRole


class ToolUseBlockStart(TypedDict):
    toolUseId: str
    name: str


class ContentBlockStart(TypedDict, total=False):
    toolUse: ToolUseBlockStart


class ContentBlockStartEvent(TypedDict):
    start: ContentBlockStart
    contentBlockIndex: int


class ToolUseBlockDelta(TypedDict):
    input: str  # a fragment of the JSON arguments; only the concatenation parses


class ReasoningContentBlockDelta(TypedDict, total=False):
    text: str
    redactedContent: bytes
    signature: str


class ContentBlockDelta(TypedDict, total=False):
    text: str
    toolUse: ToolUseBlockDelta
    reasoningContent: ReasoningContentBlockDelta
    citation: dict[str, Any]


class ContentBlockDeltaEvent(TypedDict):
    delta: ContentBlockDelta
    contentBlockIndex: int


class ContentBlockStopEvent(TypedDict):
    contentBlockIndex: int


class MessageStopEvent(TypedDict):
    stopReason: StopReason
    additionalModelResponseFields: NotRequired[Any]


class ConverseStreamMetadataEvent(TypedDict):
    usage: TokenUsage
    metrics: ConverseMetrics
    trace: NotRequired[dict[str, Any]]
    performanceConfig: NotRequired[PerformanceConfiguration]
    serviceTier: NotRequired[ServiceTier]


class StreamExceptionEvent(TypedDict, total=False):
    message: str


class ModelStreamErrorEvent(TypedDict):
    message: NotRequired[str]
    originalStatusCode: NotRequired[int]
    originalMessage: NotRequired[str]


class ConverseStreamEvent(TypedDict, total=False):
    """One item of the `stream` that `converse_stream` returns: exactly one key is set."""

    messageStart: MessageStartEvent
    contentBlockStart: ContentBlockStartEvent
    contentBlockDelta: ContentBlockDeltaEvent
    contentBlockStop: ContentBlockStopEvent
    messageStop: MessageStopEvent
    metadata: ConverseStreamMetadataEvent
    internalServerException: StreamExceptionEvent
    modelStreamErrorException: ModelStreamErrorEvent
    validationException: StreamExceptionEvent
    throttlingException: StreamExceptionEvent
    serviceUnavailableException: StreamExceptionEvent
