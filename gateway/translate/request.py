"""An OpenAI chat-completions request as the arguments of a Bedrock Converse call.

`openai_to_converse_request` is pure: the resolved Bedrock model id comes in as an
argument, nothing is read from the clock, the environment or the network, so the same
request always gives the same call and golden files need no ignore lists.

The rules live with the code that applies them:

* `gateway.translate.request_messages`: system placement, merging of turns, blank text,
  tool calls and results in the history, and the repair of broken tool histories.
* `gateway.translate.tools`: tool definitions, `tool_choice` (including how "none" is
  honoured), `parallel_tool_calls`, and the mapping of tool names Bedrock would refuse.
* `gateway.translate.request_params`: the tables of supported, ignored and unsupported
  parameters, `extra_body` fields, and `requestMetadata`.

Anything Bedrock cannot honour raises `UnsupportedParameterError` naming the parameter,
unless the caller passes `drop_unsupported=True` (the `drop_unsupported_params` config
key); dropped parameter names are returned so the handler can report them in the
`x-gateway-dropped-params` header. Malformed input raises `InvalidRequestError` with the
JSON path of the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.schemas.converse import ConverseRequest
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.request_messages import convert_messages
from gateway.translate.request_params import (
    additional_model_request_fields,
    inference_config,
    request_metadata,
    unsupported_params,
)
from gateway.translate.tools import ToolNames, function_tools, request_tool_names, tool_config

__all__ = ["ConverseCall", "openai_to_converse_request"]


@dataclass(frozen=True, slots=True)
class ConverseCall:
    """What to send to Bedrock, and what the response translator needs to know about it.

    `request` holds the keyword arguments of `converse` / `converse_stream` without
    `modelId`. `dropped` names the parameters left out under `drop_unsupported`.
    `tool_names` maps each Bedrock tool name that differs from the client's back to the
    client's name, for the tool calls in the response.
    """

    request: ConverseRequest
    dropped: tuple[str, ...] = ()
    tool_names: dict[str, str] = field(default_factory=dict)


def openai_to_converse_request(
    req: ChatCompletionRequest, *, model_id: str, drop_unsupported: bool = False
) -> ConverseCall:
    dropped = unsupported_params(req, drop=drop_unsupported)
    additional = additional_model_request_fields(
        req.model_extra or {}, model_id=model_id, drop=drop_unsupported, dropped=dropped
    )

    tools = function_tools(req.tools)
    names = ToolNames(request_tool_names(req, tools) if tools else ())
    conversation = convert_messages(req.messages, names, tools_offered=bool(tools))

    request: ConverseRequest = {"messages": conversation.messages}
    if conversation.system:
        request["system"] = conversation.system
    inference = inference_config(req, model_id=model_id, drop=drop_unsupported, dropped=dropped)
    if inference:
        request["inferenceConfig"] = inference
    tool_configuration = tool_config(
        tools, req.tool_choice, names, history_has_tool_blocks=conversation.has_tool_blocks
    )
    if tool_configuration is not None:
        request["toolConfig"] = tool_configuration
    if additional:
        request["additionalModelRequestFields"] = additional
    metadata = request_metadata(req.user, req.metadata)
    if metadata:
        request["requestMetadata"] = metadata
    return ConverseCall(request=request, dropped=tuple(dropped), tool_names=names.restored())
