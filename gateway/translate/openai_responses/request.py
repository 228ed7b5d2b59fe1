"""A Responses API request as the arguments of a Bedrock Converse call.

Pure, like the chat pair it builds on: the model id, the model's options, the fetched
remote images, the stored conversation (`previous_response_id`) and the key of the
reasoning codec all come in as arguments.

How: the request is reshaped into a chat-completions request (`gateway.translate.
openai_responses.items` for the input, `.tools` for tools and `tool_choice`, the table
below for the other parameters) and handed to `gateway.translate.openai_chat.request`,
which owns every Converse rule. Errors it raises name the chat field; `_client_param`
turns that back into the Responses field the client sent (`input[2].content[0]`,
`text.format.schema`, `max_output_tokens`), so a 400 always names the client's own field.

Parameters (`RESPONSES_PARAMS`; a test checks every field of `ResponsesRequest` is in it):

* mapped to the chat request: `instructions`, `input`, `tools`, `tool_choice`,
  `parallel_tool_calls`, `text.format` (-> `response_format`: the structured-output path,
  so `client.responses.parse` works), `text.verbosity`, `reasoning.effort` (->
  `reasoning_effort`), `max_output_tokens` (-> `max_completion_tokens`, which like it
  counts reasoning tokens), `temperature`, `top_p`, `top_logprobs`, `metadata`, `user`,
  `safety_identifier`, `prompt_cache_key`, `prompt_cache_retention`, `service_tier`.
* `reasoning.effort` on a model without reasoning is dropped and listed, whatever
  `drop_unsupported` says: agent clients (Codex, the Agents SDK) set it for every model,
  and refusing would make those clients unusable with most models. `reasoning.summary`
  is accepted: Bedrock returns the reasoning itself, not a summary; with `include:
  ["reasoning.encrypted_content"]` it travels back opaquely.
* handled by the surface: `store`, `stream`, `stream_options`, `previous_response_id`,
  `include` (checked here against `INCLUDE_VALUES`), `client_metadata` (Codex's own).
* refused unless `drop_unsupported` (then dropped and listed): `max_tool_calls`,
  `conversation`, `background: true`, `prompt` (stored prompt templates), and
  `truncation: "auto"` (the gateway does not cut a conversation to fit; "disabled" is
  what it does).
* unknown top-level fields (the SDK's `extra_body`) go to the chat translator, which
  forwards the ones it knows (`top_k`, `thinking`, ...) and refuses the rest by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pydantic

from gateway.errors import GatewayError, InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import GuardrailConfiguration
from gateway.schemas.openai import ChatCompletionRequest, validation_error_param
from gateway.schemas.openai_responses import InputItem, ResponsesRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    openai_to_converse_request,
    remote_image_urls,
)
from gateway.translate.openai_responses.items import ChatMessages, chat_messages
from gateway.translate.openai_responses.tools import Tools, chat_tool_choice, chat_tools

__all__ = [
    "ENCRYPTED_REASONING",
    "INCLUDE_VALUES",
    "RESPONSES_PARAMS",
    "Prepared",
    "ResponsesCall",
    "converse_call",
    "prepare",
]

ENCRYPTED_REASONING: Final = "reasoning.encrypted_content"

# `include` value -> True when honoured, False when there is nothing to include because
# the output it concerns never exists here (hosted tools never run, input images are
# returned as sent). Values not listed are refused by name.
INCLUDE_VALUES: Final[Mapping[str, bool]] = {
    ENCRYPTED_REASONING: True,
    "message.input_image.image_url": False,
    "web_search_call.action.sources": False,
    "web_search_call.results": False,
    "file_search_call.results": False,
    "code_interpreter_call.outputs": False,
    "computer_call_output.output.image_url": False,
}

# Every request field -> how it is handled (see the module docstring).
RESPONSES_PARAMS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls"),
        "mapped",
    ),
    **dict.fromkeys(
        ("text", "reasoning", "max_output_tokens", "temperature", "top_p", "top_logprobs"),
        "mapped",
    ),
    **dict.fromkeys(
        ("metadata", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention"),
        "mapped",
    ),
    "service_tier": "mapped",
    **dict.fromkeys(
        ("store", "stream", "stream_options", "previous_response_id", "include"), "surface"
    ),
    "client_metadata": "ignored",
    **dict.fromkeys(
        ("max_tool_calls", "conversation", "background", "prompt", "truncation"), "unsupported"
    ),
}

# Neutral values of unsupported parameters: they ask for nothing, so they pass.
_NEUTRAL: Final[Mapping[str, Any]] = {"background": False, "truncation": "disabled"}
_UNSUPPORTED_REASONS: Final[Mapping[str, str]] = {
    "max_tool_calls": "Bedrock has no cap on tool calls per response",
    "conversation": "OpenAI conversation objects are not stored here; use previous_response_id",
    "background": "responses run in the foreground only",
    "prompt": "stored prompt templates live in OpenAI's dashboard",
    "truncation": "the gateway never cuts a conversation to fit ('disabled' is what it does)",
}
_UNSUPPORTED_NAMES: Final = frozenset(_UNSUPPORTED_REASONS)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The request reshaped for the chat pair, before images are fetched."""

    chat: ChatCompletionRequest
    messages: ChatMessages
    tools: Tools
    dropped: tuple[str, ...]
    include_reasoning: bool

    def remote_image_urls(self) -> list[tuple[str, str]]:
        """(url, param) per https image the surface must fetch, param in the client's terms."""
        return [(url, self.client_param(param)) for url, param in remote_image_urls(self.chat)]

    def client_param(self, param: str) -> str:
        return _client_param(param, self.messages, self.tools)


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """The Converse call, and what the response translators need to map its answer back."""

    converse: ConverseCall
    dropped: tuple[str, ...] = ()
    dropped_tools: tuple[str, ...] = ()
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    custom: frozenset[str] = frozenset()  # tools whose calls are `custom_tool_call` items
    include_reasoning: bool = False

    @property
    def tool_names(self) -> dict[str, str]:
        return self.converse.tool_names


def prepare(
    req: ResponsesRequest,
    *,
    reasoning_key: bytes,
    reasoning_supported: bool,
    drop_unsupported: bool = False,
    history: Sequence[InputItem] = (),
) -> Prepared:
    """Check `req` and reshape it for the chat pair; see the module docstring."""
    dropped: list[str] = []
    if not _UNSUPPORTED_NAMES.isdisjoint(req.model_fields_set):  # (all default to None)
        _unsupported(req, drop=drop_unsupported, dropped=dropped)
    include_reasoning = _check_include(req.include, drop=drop_unsupported, dropped=dropped)
    if isinstance(req.input, str):
        items: list[InputItem] = []
    else:
        items = list(req.input or ())
    messages = chat_messages(
        items, instructions=req.instructions, reasoning_key=reasoning_key, history=history
    )
    if isinstance(req.input, str):
        messages.add({"role": "user", "content": req.input}, "input")
    tools = chat_tools(req.tools)
    body: dict[str, Any] = {"model": req.model, "messages": messages.messages}
    if tools.chat:
        body["tools"] = tools.chat
    choice = chat_tool_choice(req.tool_choice)
    if choice is not None:
        body["tool_choice"] = choice
    _copy(req, body)
    if req.text is not None:
        if req.text.format is not None:
            body["response_format"] = _response_format(req.text.format)
        if req.text.verbosity is not None:
            body["verbosity"] = req.text.verbosity
    effort = req.reasoning.effort if req.reasoning is not None else None
    if effort is not None:
        if reasoning_supported or effort == "none":
            body["reasoning_effort"] = effort
        else:
            dropped.append("reasoning")
    body.update(req.model_extra or {})
    try:
        chat = ChatCompletionRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        param, message = validation_error_param(exc)
        client = _client_param(param, messages, tools) if param else None
        raise InvalidRequestError(message, param=client) from None
    return Prepared(
        chat=chat,
        messages=messages,
        tools=tools,
        dropped=tuple(dropped),
        include_reasoning=include_reasoning,
    )


def _unsupported(req: ResponsesRequest, *, drop: bool, dropped: list[str]) -> None:
    for name, reason in _UNSUPPORTED_REASONS.items():
        value = getattr(req, name)
        if value is None or _NEUTRAL.get(name, object()) == value:
            continue
        if not drop:
            raise UnsupportedParameterError(
                f"Bedrock cannot honour '{name}': {reason}. Remove it, or ask the operator "
                "to enable drop_unsupported_params.",
                param=name,
            )
        dropped.append(name)


def converse_call(
    prepared: Prepared,
    *,
    model_id: str,
    drop_unsupported: bool = False,
    options: ModelOptions | None = None,
    images: Mapping[str, tuple[str, bytes]] | None = None,
    guardrail: GuardrailConfiguration | None = None,
) -> ResponsesCall:
    """The Converse call for a prepared request; errors name the client's fields.

    `guardrail` is the operator's `guardrailConfig`, as for chat (a caller's own guardrail
    fields, sent as `extra_body`, are dropped and listed there).
    """
    try:
        converse = openai_to_converse_request(
            prepared.chat,
            model_id=model_id,
            drop_unsupported=drop_unsupported,
            options=options or ModelOptions(),
            images=images,
            guardrail=guardrail,
        )
    except GatewayError as exc:
        if exc.param is not None:
            exc.param = prepared.client_param(exc.param)
        exc.message = _client_words(exc.message)
        exc.args = (exc.message,)
        raise
    dropped = [*prepared.dropped, *(prepared.client_param(name) for name in converse.dropped)]
    return ResponsesCall(
        converse=converse,
        dropped=tuple(dict.fromkeys(dropped)),
        dropped_tools=tuple(prepared.tools.dropped),
        namespaced=dict(prepared.tools.namespaced),
        custom=frozenset(prepared.tools.custom),
        include_reasoning=prepared.include_reasoning,
    )


_COPIED: Final = (
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
)


def _copy(req: ResponsesRequest, body: dict[str, Any]) -> None:
    for name in _COPIED:
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.max_output_tokens is not None:
        body["max_completion_tokens"] = req.max_output_tokens


def _check_include(include: list[str] | None, *, drop: bool, dropped: list[str]) -> bool:
    honoured = False
    for i, value in enumerate(include or ()):
        known = INCLUDE_VALUES.get(value)
        if known is None:
            if not drop:
                raise UnsupportedParameterError(
                    f"include value '{value}' cannot be honoured on Bedrock; supported: "
                    + ", ".join(INCLUDE_VALUES),
                    param=f"include[{i}]",
                )
            dropped.append(f"include[{i}]")
        honoured = honoured or (known is True)
    return honoured


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise InvalidRequestError(
            "text.format.type must be 'text', 'json_object' or 'json_schema'.",
            param="text.format.type",
        )
    name = fmt.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            "A json_schema text.format needs a 'name'.", param="text.format.name"
        )
    schema: dict[str, Any] = {"name": name}
    for key in ("schema", "description", "strict"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


# -- error paths back in the client's terms --------------------------------------------------

_MESSAGE: Final = re.compile(r"messages\[(\d+)\](.*)")
_CALL: Final = re.compile(r"\.tool_calls\[(\d+)\](.*)")
_TOOL: Final = re.compile(r"tools\[(\d+)\](?:\.function)?(.*)")
_RENAMED: Final[Mapping[str, str]] = {
    "messages": "input",
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
    "response_format": "text.format",
    "response_format.json_schema.schema": "text.format.schema",
    "response_format.json_schema.name": "text.format.name",
}


def _client_param(param: str, messages: ChatMessages, tools: Tools) -> str:
    if param in _RENAMED:
        return _RENAMED[param]
    if param.startswith("response_format"):
        return "text.format"
    if match := _MESSAGE.fullmatch(param):
        index, rest = int(match.group(1)), match.group(2)
        if index >= len(messages.paths):
            return "input"
        path = messages.paths[index]
        if call := _CALL.fullmatch(rest):
            calls = messages.call_paths.get(index, [])
            j = int(call.group(1))
            tail = ".arguments" if call.group(2).endswith("arguments") else ""
            return (calls[j] if j < len(calls) else path) + tail
        if rest == ".content" and messages.messages[index]["role"] == "tool":
            return f"{path}.output"
        return path + rest
    if match := _TOOL.fullmatch(param):
        index = int(match.group(1))
        if index < len(tools.paths):
            return tools.paths[index] + match.group(2)
    return param


def _client_words(message: str) -> str:
    for chat, responses in (
        ("'max_completion_tokens'", "'max_output_tokens'"),
        ("'max_tokens'", "'max_output_tokens'"),
        ("'reasoning_effort'", "'reasoning.effort'"),
        ("response_format", "text.format"),
    ):
        message = message.replace(chat, responses)
    return message
