"""An OpenAI chat-completions request as the arguments of a Bedrock Converse call.

`openai_to_converse_request` is pure: the resolved Bedrock model id, the model's options
and the bytes of remote images come in as arguments, nothing is read from the clock, the
environment or the network, so the same request always gives the same call and golden
files need no ignore lists. Remote images are the one thing that needs I/O first: the app
lists them with `remote_image_urls`, fetches them, and passes them in as `images`.

The rules live with the code that applies them:

* `gateway.translate.openai_chat.messages`: system placement, merging of turns, blank text,
  tool calls and results in the history, and the repair of broken tool histories.
* `gateway.translate.openai_chat.content`, `request_images`, `request_documents`: what each
  content part becomes (text, images, documents).
* `gateway.translate.shared.cache_points`: prompt-cache points and `auto_cache_system`.
* `gateway.translate.shared.tools`: tool definitions, `tool_choice` (including how "none" is
  honoured), `parallel_tool_calls`, and the mapping of tool names Bedrock would refuse.
* `gateway.translate.shared.structured`: `response_format` natively (`outputConfig`) or
  as a tool, and how the tool combines with the client's tools.
* `gateway.translate.shared.reasoning`: `reasoning_effort` and `thinking`, the settings
  thinking forbids, max tokens against the budget, and reasoning echoed in the history.
* `gateway.translate.openai_chat.params`: the tables of supported, ignored and unsupported
  parameters, `extra_body` fields, `service_tier`, `prompt_cache_retention` and
  `requestMetadata` (`request_metadata=` carries the gateway's own entries, from
  `gateway.translate.shared.request_metadata.gateway_request_metadata`).

Anything Bedrock cannot honour raises `UnsupportedParameterError` naming the parameter,
unless the caller passes `drop_unsupported=True` (the `drop_unsupported_params` config
key); dropped parameter names are returned so the handler can report them in the
`x-gateway-dropped-params` header. Malformed input raises `InvalidRequestError` with the
JSON path of the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from gateway.schemas.converse import ConverseRequest, GuardrailConfiguration, OutputConfig
from gateway.schemas.openai import ChatCompletionRequest, JSONObjectFormat, JSONSchemaFormat
from gateway.translate.openai_chat.content import ContentParts
from gateway.translate.openai_chat.image_parts import UnfetchedImageError
from gateway.translate.openai_chat.image_parts import remote_image_urls as _remote_image_urls
from gateway.translate.openai_chat.messages import convert_messages
from gateway.translate.openai_chat.params import (
    additional_model_request_fields,
    cache_retention_ttl,
    inference_config,
    service_tier,
    unsupported_params,
)
from gateway.translate.openai_chat.params import request_metadata as _request_metadata
from gateway.translate.shared.cache_points import CacheMarks, add_system_cache_point
from gateway.translate.shared.guardrails import take_caller_guardrail_fields
from gateway.translate.shared.reasoning import (
    fit_max_tokens,
    requested_thinking,
    thinking_fields,
    without_refused_settings,
)
from gateway.translate.shared.structured import (
    native_text_format,
    response_tool,
    with_response_tool,
)
from gateway.translate.shared.tools import (
    ToolNames,
    disable_parallel_tool_use,
    function_tools,
    request_tool_names,
    tool_config,
)

__all__ = [
    "DEFAULT_REASONING_BUDGETS",
    "ConverseCall",
    "ModelOptions",
    "UnfetchedImageError",
    "openai_to_converse_request",
    "remote_image_urls",
]

DEFAULT_REASONING_BUDGETS: Final[Mapping[str, int]] = MappingProxyType(
    {"low": 1024, "medium": 4096, "high": 16384}
)


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """What the translator needs to know about the model, from its config entry.

    The defaults are those of a model the config does not describe: no reasoning, no
    automatic cache point, Bedrock's documented 3.75 MB limit per image, structured
    output through a tool, the default service tier only.
    `reasoning_budgets` maps the effort levels "low", "medium" and "high" to thinking
    budgets in tokens; `reasoning_mode` "adaptive" uses effort instead of budgets.
    """

    reasoning_supported: bool = False
    reasoning_budgets: Mapping[str, int] = field(default_factory=lambda: DEFAULT_REASONING_BUDGETS)
    auto_cache_system: bool = False
    max_image_bytes: int = 3_750_000
    reasoning_mode: str = "budget"  # "budget" | "adaptive"
    structured_output: str = "tool"  # "tool" | "native"
    service_tiers: tuple[str, ...] = ("default",)


_DEFAULT_OPTIONS: Final = ModelOptions()


_NO_IMAGES: Final[Mapping[str, tuple[str, bytes]]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConverseCall:
    """What to send to Bedrock, and what the response translator needs to know about it.

    `request` holds the keyword arguments of `converse` / `converse_stream` without
    `modelId`. `dropped` names the parameters left out under `drop_unsupported`.
    `tool_names` maps each Bedrock tool name that differs from the client's back to the
    client's name, for the tool calls in the response. `structured_output_tool` is the
    Bedrock name of the tool that stands for `response_format`, whose call the response
    translators return as the message content; None when there is none.
    """

    request: ConverseRequest
    dropped: tuple[str, ...] = ()
    tool_names: dict[str, str] = field(default_factory=dict)
    structured_output_tool: str | None = None


def remote_image_urls(req: ChatCompletionRequest) -> list[tuple[str, str]]:
    """(url, param) for each http(s) image the app must fetch before translating `req`.

    Each distinct URL once, with the JSON path of its first use (for error messages);
    pass the fetched (format, bytes) keyed by URL as `images`.
    """
    return _remote_image_urls(req.messages)


def openai_to_converse_request(
    req: ChatCompletionRequest,
    *,
    model_id: str,
    drop_unsupported: bool = False,
    options: ModelOptions = _DEFAULT_OPTIONS,
    images: Mapping[str, tuple[str, bytes]] | None = None,
    request_metadata: Mapping[str, str] | None = None,
    guardrail: GuardrailConfiguration | None = None,
) -> ConverseCall:
    """The Converse call for `req`; see the module docstring.

    `images` maps each URL from `remote_image_urls(req)` to its (format, bytes); a URL
    missing from it raises `UnfetchedImageError`, a bug in the caller. `request_metadata`
    holds the gateway's own `requestMetadata` entries (key_id, team, user), sent first.
    `guardrail` is the operator's `guardrailConfig`
    (`gateway.translate.shared.guardrails.converse_guardrail_config`); a caller's own
    guardrail fields, at the top level or inside `additional_model_request_fields`, are
    always dropped and listed, so that no request can add, remove or weaken one.
    """
    gateway_metadata = request_metadata
    drop = drop_unsupported
    dropped = unsupported_params(req, drop=drop)
    extra = dict(req.model_extra) if req.model_extra else {}
    dropped.extend(_caller_guardrail_fields(extra))
    tier = service_tier(req.service_tier, allowed=options.service_tiers, drop=drop, dropped=dropped)
    thinking = requested_thinking(
        req,
        extra,
        supported=options.reasoning_supported,
        budgets=options.reasoning_budgets,
        drop=drop,
        dropped=dropped,
        adaptive=options.reasoning_mode == "adaptive",
    )
    if thinking is not None:
        req = without_refused_settings(req, extra, drop=drop, dropped=dropped)
    additional = additional_model_request_fields(
        extra,
        model_id=model_id,
        drop=drop,
        dropped=dropped,
        base=thinking_fields(thinking) if thinking is not None else None,
    )

    tools = function_tools(req.tools)
    names = ToolNames(request_tool_names(req, tools) if tools else ())
    cache = CacheMarks(
        drop=drop, dropped=dropped, default_ttl=cache_retention_ttl(req.prompt_cache_retention)
    )
    parts = ContentParts(
        images=images if images is not None else _NO_IMAGES,
        max_image_bytes=options.max_image_bytes,
        cache=cache,
    )
    conversation = convert_messages(
        req.messages,
        names,
        tools_offered=bool(tools),
        parts=parts,
        keep_reasoning=thinking is not None,
    )

    request: ConverseRequest = {"messages": conversation.messages}
    if conversation.system:
        request["system"] = conversation.system
    inference = inference_config(req, model_id=model_id, drop=drop, dropped=dropped)
    if thinking is not None:
        fit_max_tokens(inference, thinking, req)
    if inference:
        request["inferenceConfig"] = inference
    tool_configuration = tool_config(
        tools,
        req.tool_choice,
        names,
        history_has_tool_blocks=conversation.has_tool_blocks,
        cache=cache,
        strict_tools=options.structured_output == "native",
    )
    output: OutputConfig = {}
    structured_output_tool: str | None = None
    if isinstance(req.response_format, JSONSchemaFormat) and options.structured_output == "native":
        output["textFormat"] = native_text_format(req.response_format)
    elif isinstance(req.response_format, JSONObjectFormat | JSONSchemaFormat):
        response = response_tool(req.response_format, names)
        tool_configuration = with_response_tool(
            tool_configuration,
            response,
            tool_choice=req.tool_choice,
            thinking=thinking is not None,
        )
        structured_output_tool = response.name
    if tool_configuration is not None:
        request["toolConfig"] = tool_configuration
    if req.parallel_tool_calls is False:
        disable_parallel_tool_use(additional, model_id=model_id, tool_config=tool_configuration)
    if additional:
        request["additionalModelRequestFields"] = additional
    if thinking is not None and thinking.effort is not None:
        output["effort"] = thinking.effort
    if output:
        request["outputConfig"] = output
    if tier is not None:
        request["serviceTier"] = {"type": tier}  # type: ignore[typeddict-item]
    metadata = _request_metadata(req.user, req.metadata, gateway_metadata)
    if metadata:
        request["requestMetadata"] = metadata
    if options.auto_cache_system:
        add_system_cache_point(request, cache.default_ttl)
    if guardrail is not None:
        request["guardrailConfig"] = guardrail
    return ConverseCall(
        request=request,
        dropped=tuple(dropped),
        tool_names=names.restored(),
        structured_output_tool=structured_output_tool,
    )


def _caller_guardrail_fields(extra: dict[str, Any]) -> list[str]:
    """Take the caller's guardrail fields out of `extra` (and of the raw
    `additional_model_request_fields`, copied first); their names, for `dropped`."""
    if not extra:
        return []
    found = take_caller_guardrail_fields(extra)
    raw = extra.get("additional_model_request_fields")
    if isinstance(raw, dict):
        fields = dict(raw)
        inner = take_caller_guardrail_fields(fields)
        if inner:
            extra["additional_model_request_fields"] = fields
            found.extend(f"additional_model_request_fields.{name}" for name in inner)
    return found
