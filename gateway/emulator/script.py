"""Decide the whole answer up front: the `@emulator` directive, its defaults, the token rules.

A `Script` is everything the emulator will do for one request, resolved from the
conversation, the app's default script and the request's own directive (see SCRIPTING.md).
Resolving it before the first byte is sent keeps the answer deterministic and keeps the
serving code in `app.py` free of decisions. This module does no I/O.

Mistakes in a directive are answered with a 400 ValidationException naming the problem:
a typo in a test must fail the test, not silently produce the default answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from gateway.emulator.conversation import Conversation, read_conversation
from gateway.emulator.errors import BEDROCK_ERRORS, STREAM_EXCEPTIONS, ServiceError
from gateway.emulator.features import Features, read_features, schema_sample
from gateway.emulator.guardrails import BLOCKED_MESSAGE, GuardrailSeen
from gateway.emulator.plan import (
    Fault,
    InvokeScript,
    Reasoning,
    Script,
    StreamError,
    ToolCall,
    Usage,
)
from gateway.emulator.schema_example import example_for

__all__ = [
    "INVOKE_KEYS",
    "KEYS",
    "STOP_REASONS",
    "ScriptError",
    "default_reply",
    "parse_invoke_script",
    "parse_script",
    "word_pieces",
]

KEYS = frozenset(
    {
        "reply", "chunks", "delay_ms", "first_token_delay_ms", "usage", "stop_reason",
        "tool_calls", "reasoning", "error", "stream_error", "disconnect_after",
        "omit_metadata", "fail_times", "key", "latency_ms", "echo", "guardrail",
    }
)  # fmt: skip
INVOKE_KEYS = frozenset({"error", "fail_times", "key", "delay_ms"})
STOP_REASONS = (
    "end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened",
    "content_filtered", "malformed_model_output", "malformed_tool_use",
    "model_context_window_exceeded",
)  # fmt: skip
_USAGE_KEYS = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
MAX_DELAY_MS = 600_000
ECHO_LIMIT = 200
_PIECES = re.compile(r"\s*\S+(?:\s+\Z)?")


class ScriptError(ServiceError):
    """A directive the emulator cannot follow: a 400 ValidationException naming the problem."""

    def __init__(self, problem: str) -> None:
        super().__init__("ValidationException", f"Invalid @emulator directive: {problem}")


def word_pieces(text: str) -> list[str]:
    """Split text into words that keep their leading whitespace; joined, they give `text`."""
    pieces: list[str] = _PIECES.findall(text)
    if not pieces or len("".join(pieces)) != len(text):
        return [text]
    return pieces


def default_reply(last_user_text: str) -> str:
    """`You said: <text>`, whitespace collapsed and cut at ECHO_LIMIT characters."""
    echo = " ".join(last_user_text.split())
    if not echo:
        return "You said nothing."
    return "You said: " + echo[:ECHO_LIMIT].rstrip()


def parse_script(
    request_body: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    guardrail: GuardrailSeen | None = None,
) -> Script:
    """The Script for a Converse / ConverseStream body; `defaults` sit under its directive.

    `guardrail` is the guardrail the request carried, already checked (`guardrails.py`):
    only then can the `guardrail` directive intervene.

    Raises `ServiceError` (ValidationException) when Bedrock would reject the conversation,
    and `ScriptError`, a ValidationException too, when the directive is wrong.
    """
    conversation = read_conversation(request_body)
    features = read_features(request_body)
    raw = {**(defaults or {}), **_load_directive(conversation.directive)}
    if "echo" in raw:
        # The reply is what the request carried in one top-level field, as compact JSON
        # (null when absent): how a full-path test sees what the gateway sent Bedrock.
        field = _text(raw.pop("echo"), "'echo'", empty=False)
        raw.setdefault("reply", json.dumps(request_body.get(field), separators=(",", ":")))
    return _build(raw, conversation, features, guardrail)


def parse_invoke_script(
    directive: str | None, *, defaults: Mapping[str, Any] | None = None
) -> InvokeScript:
    """The script of an InvokeModel call: only `error`, `fail_times`, `key` and `delay_ms`.

    Default-script keys meant for chat answers are ignored here; the same keys in the
    request's own directive are refused, since they could never take effect.
    """
    own = _load_directive(directive)
    for name in own:
        if name not in INVOKE_KEYS:
            raise ScriptError(f"key {name!r} does not apply to InvokeModel")
    base = {k: v for k, v in (defaults or {}).items() if k in INVOKE_KEYS}
    raw = {**base, **own}
    return InvokeScript(_fault(raw), _number(raw, "delay_ms"))


def _load_directive(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ScriptError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ScriptError("expected a JSON object after @emulator")
    return value


def _only(obj: Mapping[str, Any], allowed: Any, where: str) -> None:
    for name in obj:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise ScriptError(f"unknown key {name!r} in {where} (known keys: {known})")


def _int(raw: Mapping[str, Any], key: str, *, minimum: int = 0) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ScriptError(f"{key!r} must be an integer >= {minimum}")
    return value


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if value is None:
        return 0.0
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ScriptError(f"{key!r} must be a number of milliseconds")
    if not 0 <= value <= MAX_DELAY_MS:
        raise ScriptError(f"{key!r} must be between 0 and {MAX_DELAY_MS}")
    return float(value)


def _text(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise ScriptError(f"{where} must be a {'' if empty else 'non-empty '}string")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScriptError(f"{where} must be an object")
    return value


def _fault(raw: Mapping[str, Any]) -> Fault | None:
    times = _int(raw, "fail_times")
    key = raw.get("key")
    if key is not None and times is None:
        raise ScriptError("'key' is only used together with 'fail_times'")
    if times is not None:
        key = _text(key, "'key' (required with 'fail_times')", empty=False)
    error = raw.get("error", "ThrottlingException" if times is not None else None)
    if error is None:
        return None
    spec = {"type": error} if isinstance(error, str) else _object(error, "'error'")
    _only(spec, ("type", "message"), "'error'")
    name = spec.get("type")
    if name not in BEDROCK_ERRORS:
        raise ScriptError(f"'error.type' must be one of {', '.join(BEDROCK_ERRORS)}")
    message = spec.get("message")
    if message is not None:
        message = _text(message, "'error.message'")
    return Fault(name, message, times, key)


def _stream_error(value: Any) -> StreamError | None:
    if value is None:
        return None
    spec = {"type": value} if isinstance(value, str) else _object(value, "'stream_error'")
    allowed = ("after_events", "type", "message", "original_status_code", "original_message")
    _only(spec, allowed, "'stream_error'")
    name = _text(spec.get("type", "modelStreamErrorException"), "'stream_error.type'")
    name = name[:1].lower() + name[1:]  # accept ThrottlingException for throttlingException
    if name not in STREAM_EXCEPTIONS:
        raise ScriptError(f"'stream_error.type' must be one of {', '.join(STREAM_EXCEPTIONS)}")
    message = _text(spec.get("message", STREAM_EXCEPTIONS[name]), "'stream_error.message'")
    after = _int(spec, "after_events")
    status = _int(spec, "original_status_code", minimum=100)
    original = spec.get("original_message")
    if name == "modelStreamErrorException":
        status = 500 if status is None else status
        original = _text(message if original is None else original, "'original_message'")
    elif status is not None or original is not None:
        raise ScriptError("'original_*' fields belong to modelStreamErrorException only")
    return StreamError(1 if after is None else after, name, message, status, original)


def _tool_calls(value: Any) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScriptError("'tool_calls' must be a list")
    calls = []
    for index, item in enumerate(value):
        spec = _object(item, f"tool_calls[{index}]")
        _only(spec, ("name", "input", "id"), f"tool_calls[{index}]")
        name = _text(spec.get("name"), f"tool_calls[{index}].name", empty=False)
        arguments = _object(spec.get("input", {}), f"tool_calls[{index}].input")
        encoded = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
        call_id = spec.get("id")
        if call_id is None:
            digest = hashlib.sha256(f"{index}\0{name}\0{encoded}".encode()).digest()
            call_id = "tooluse_" + base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        call_id = _text(call_id, f"tool_calls[{index}].id", empty=False)
        calls.append(ToolCall(call_id, name, arguments, encoded))
    return tuple(calls)


def _reasoning(value: Any) -> tuple[Reasoning, ...]:
    if value is None:
        return ()
    blocks = []
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        spec = _object(item, f"reasoning[{index}]")
        _only(spec, ("text", "signature", "redacted"), f"reasoning[{index}]")
        if "redacted" in spec:
            if len(spec) > 1:
                raise ScriptError("'redacted' reasoning has no text or signature")
            redacted = _text(spec["redacted"], "'reasoning.redacted'", empty=False)
            try:
                base64.b64decode(redacted, validate=True)
            except binascii.Error:
                raise ScriptError("'reasoning.redacted' must be base64") from None
            blocks.append(Reasoning(redacted=redacted))
            continue
        text = _text(spec.get("text"), "'reasoning.text'", empty=False)
        signature = spec.get("signature")
        if signature is not None:
            signature = _text(signature, "'reasoning.signature'", empty=False)
        blocks.append(Reasoning(text=text, signature=signature))
    return tuple(blocks)


def _usage(
    value: Any,
    conversation: Conversation,
    reply: str,
    reasoning: tuple[Reasoning, ...],
    tool_calls: tuple[ToolCall, ...],
    cache_ttl: str,
) -> Usage:
    spec = _object({} if value is None else value, "'usage'")
    if "totalTokens" in spec:
        raise ScriptError("'usage.totalTokens' is computed: input + output + cache read/write")
    _only(spec, _USAGE_KEYS, "'usage'")
    input_tokens = _int(spec, "inputTokens")
    if input_tokens is None:
        input_tokens = max(1, math.ceil(conversation.input_chars / 4))
    output_tokens = _int(spec, "outputTokens")
    if output_tokens is None:
        words = len(reply.split()) + sum(len(r.text.split()) for r in reasoning if r.text)
        tools = sum(math.ceil(len(call.input_json) / 4) for call in tool_calls)
        output_tokens = max(1, words + tools)
    return Usage(
        input_tokens,
        output_tokens,
        _int(spec, "cacheReadInputTokens"),
        _int(spec, "cacheWriteInputTokens"),
        cache_ttl,
    )


def _intervenes(raw: Mapping[str, Any], guardrail: GuardrailSeen | None) -> bool:
    value = raw.get("guardrail")
    if value is None:
        return False
    if value != "intervene":
        raise ScriptError("'guardrail' must be \"intervene\"")
    # As on Bedrock: a request without a guardrail has nothing that could intervene.
    return guardrail is not None


def _build(
    raw: Mapping[str, Any],
    conversation: Conversation,
    features: Features,
    guardrail: GuardrailSeen | None = None,
) -> Script:
    _only(raw, KEYS, "@emulator")
    if _intervenes(raw, guardrail):
        # The guardrail blocks the model's output: its message replaces the answer.
        raw = {
            **{k: v for k, v in raw.items() if k not in ("tool_calls", "reasoning")},
            "reply": raw.get("reply", BLOCKED_MESSAGE),
            "stop_reason": "guardrail_intervened",
        }
        intervened = True
    else:
        intervened = False
    tool_calls = _tool_calls(raw.get("tool_calls"))
    if not tool_calls and "reply" not in raw and conversation.forced_tool is not None:
        # A forced tool gets a call to it, as Bedrock's model answers (SCRIPTING.md).
        name, schema = conversation.forced_tool
        tool_calls = _tool_calls([{"name": name, "input": example_for(schema, name=name)}])
    reasoning = _reasoning(raw.get("reasoning"))
    if "reply" in raw:
        reply = _text(raw["reply"], "'reply'")
    elif features.json_schema is not None and not tool_calls:
        # Native structured output: the answer is JSON that fits the requested schema.
        sample = schema_sample(features.json_schema)
        reply = json.dumps(sample, separators=(",", ":"), ensure_ascii=False)
    else:
        reply = "" if tool_calls else default_reply(conversation.last_user_text)
    stop_reason = "tool_use" if tool_calls else "end_turn"
    if "stop_reason" in raw:
        stop_reason = raw["stop_reason"]
        if stop_reason not in STOP_REASONS:
            raise ScriptError(f"'stop_reason' must be one of {', '.join(STOP_REASONS)}")
    elif conversation.max_tokens is not None and not tool_calls:
        pieces = word_pieces(reply)
        if len(pieces) > conversation.max_tokens:
            reply = "".join(pieces[: conversation.max_tokens])
            stop_reason = "max_tokens"
    omit_metadata = raw.get("omit_metadata", False)
    if not isinstance(omit_metadata, bool):
        raise ScriptError("'omit_metadata' must be true or false")
    return Script(
        reply=reply,
        chunks=_int(raw, "chunks", minimum=1),
        delay_ms=_number(raw, "delay_ms"),
        first_token_delay_ms=_number(raw, "first_token_delay_ms"),
        usage=_usage(
            raw.get("usage"), conversation, reply, reasoning, tool_calls, features.cache_ttl
        ),
        stop_reason=stop_reason,
        tool_calls=tool_calls,
        reasoning=reasoning,
        fault=_fault(raw),
        stream_error=_stream_error(raw.get("stream_error")),
        disconnect_after=_int(raw, "disconnect_after"),
        omit_metadata=omit_metadata,
        latency_ms=_int(raw, "latency_ms"),
        service_tier=features.service_tier,
        guardrail_action=None if guardrail is None else "INTERVENED" if intervened else "NONE",
        guardrail_traced=guardrail is not None and guardrail.traced,
    )
