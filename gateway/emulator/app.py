"""The emulator as a pure ASGI app: routing, the auth check, errors and shared state.

No framework sits in between because this app is also the target of load benchmarks: a
request costs one JSON parse, one script resolution and one JSON dump (or a few frames).
Every decision about the answer is made by `parse_script` before the first byte is sent;
this module only serves the result.

Routes (`modelId` percent-decoded, so inference-profile ARNs work):

    POST /model/{modelId}/converse         JSON in, JSON out
    POST /model/{modelId}/converse-stream  JSON in, application/vnd.amazon.eventstream out
    POST /model/{modelId}/invoke           embedding models, and Claude (Messages body)
    POST /model/{modelId}/invoke-with-response-stream   Claude: `chunk` frames out
    POST /model/{modelId}/count-tokens     Claude: CountTokens (invokeModel or converse form)
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from gateway.emulator.answers import (
    converse_response,
    latency_ms,
    pause_ms,
    stream_events,
)
from gateway.emulator.claude import (
    claude_message,
    claude_stream_plan,
    converse_view,
    is_claude,
    read_claude_body,
)
from gateway.emulator.conversation import split_directive
from gateway.emulator.embeddings import (
    embedding_family,
    read_embedding_request,
    render_embeddings,
)
from gateway.emulator.errors import ServiceError, error_body, error_type_header
from gateway.emulator.guardrails import read_converse_guardrail, read_invoke_guardrail
from gateway.emulator.pacing import (
    ClientGone,
    EmulatedDisconnect,
    Message,
    Receive,
    Scope,
    Send,
    Watch,
    install_log_filter,
    send_plan,
    send_stream,
)
from gateway.emulator.plan import Fault
from gateway.emulator.script import parse_invoke_script, parse_script
from gateway.ids import new_uuid

__all__ = ["BedrockEmulator", "EmulatedDisconnect", "create_emulator_app"]

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_FAILURE_KEYS = 4096
_OPERATIONS = (
    b"converse",
    b"converse-stream",
    b"invoke",
    b"invoke-with-response-stream",
    b"count-tokens",
)
_JSON = (b"content-type", b"application/json")
_EVENTSTREAM = (b"content-type", b"application/vnd.amazon.eventstream")
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)
_SAMPLE_BODY = {"messages": [{"role": "user", "content": [{"text": "hello"}]}]}


def _is_signed(headers: list[tuple[bytes, bytes]]) -> bool:
    # Any credentials are accepted; only the presence of a real scheme is checked.
    for name, value in headers:
        if name.lower() == b"authorization":
            return value.startswith(b"AWS4-HMAC-SHA256 Credential=") or (
                value.startswith(b"Bearer ") and len(value.strip()) > len(b"Bearer")
            )
    return False


def _route(scope: Scope) -> tuple[str, bytes]:
    """The model id and operation of a request; `UnknownOperationException` otherwise.

    `raw_path` keeps `%2F` apart from `/`, but ids are split at the last `/` anyway, so a
    server that only gives the decoded `path` routes the same.
    """
    raw: bytes | None = scope.get("raw_path")
    path = raw.split(b"?", 1)[0] if raw is not None else scope["path"].encode("utf-8")
    root = scope.get("root_path", "").encode("utf-8")
    if root and path.startswith(root):
        path = path[len(root) :]
    if scope["method"] == "POST" and path.startswith(b"/model/"):
        model, _, operation = path[len(b"/model/") :].rpartition(b"/")
        if model and operation in _OPERATIONS:
            if raw is not None:
                model = unquote_to_bytes(model)
            return model.decode("utf-8", "replace"), operation
    raise ServiceError("UnknownOperationException")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ServiceError("ValidationException", "The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_model(model_id: str) -> None:
    if "invalid" in model_id or "does-not-exist" in model_id:
        raise ServiceError("ValidationException", "The provided model identifier is invalid.")


def _start(status: int, request_id: bytes, *headers: tuple[bytes, bytes]) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"x-amzn-requestid", request_id), *headers],
    }


class BedrockEmulator:
    """An ASGI app answering Bedrock Runtime requests from scripts (see SCRIPTING.md)."""

    def __init__(self, *, default_script: Mapping[str, Any] | None = None) -> None:
        self._defaults = dict(default_script or {})
        parse_script(_SAMPLE_BODY, defaults=self._defaults)  # fail at startup, not per request
        parse_invoke_script(None, defaults=self._defaults)
        self._failures: OrderedDict[str, int] = OrderedDict()
        install_log_filter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def _check_fault(self, fault: Fault | None) -> None:
        """Raise the scripted error: always, or for the first `times` requests with `key`."""
        if fault is None:
            return
        if fault.times is not None and fault.key is not None:
            seen = self._failures.pop(fault.key, 0) + 1
            self._failures[fault.key] = seen  # most recent last; the oldest key is evicted
            if len(self._failures) > MAX_FAILURE_KEYS:
                self._failures.popitem(last=False)
            if seen > fault.times:
                return
        raise ServiceError(fault.name, fault.message)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_uuid().encode("ascii")
        watch = Watch(receive)
        try:
            if not _is_signed(scope["headers"]):
                raise ServiceError("MissingAuthenticationTokenException")
            model_id, operation = _route(scope)
            body = await _read_body(receive)
            _check_model(model_id)
            if operation == b"count-tokens":
                await self._count_tokens(model_id, body, request_id, send)
            elif is_claude(model_id) and operation in (b"invoke", b"invoke-with-response-stream"):
                stream = operation == b"invoke-with-response-stream"
                await self._invoke_claude(
                    model_id, body, stream, request_id, send, watch, scope["headers"]
                )
            elif operation == b"invoke-with-response-stream":
                raise ServiceError(
                    "ValidationException",
                    "The model is unsupported for streaming. Try again with a supported model.",
                )
            elif operation == b"invoke":
                await self._invoke(model_id, body, request_id, send, watch)
            else:
                stream = operation == b"converse-stream"
                await self._converse(model_id, body, stream, request_id, send, watch)
        except ServiceError as exc:
            payload = error_body(exc.message)
            await send(
                _start(
                    exc.status,
                    request_id,
                    _JSON,
                    (b"x-amzn-errortype", error_type_header(exc.name)),
                    (b"content-length", str(len(payload)).encode("ascii")),
                )
            )
            await send({"type": "http.response.body", "body": payload})
        except ClientGone:
            pass
        finally:
            watch.close()

    async def _converse(
        self, model_id: str, body: bytes, stream: bool, request_id: bytes, send: Send, watch: Watch
    ) -> None:
        if embedding_family(model_id) is not None:
            raise ServiceError(
                "ValidationException",
                "This action doesn't support the model that you provided. "
                "Try again with a supported text or chat model.",
            )
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            raise ServiceError(
                "ValidationException",
                "Malformed input request, please reformat your input and try again.",
            )
        guardrail = read_converse_guardrail(request.get("guardrailConfig"), stream=stream)
        script = parse_script(request, defaults=self._defaults, guardrail=guardrail)
        self._check_fault(script.fault)
        if stream:
            await send_stream(script, _start(200, request_id, _EVENTSTREAM), send, watch)
            return
        # A non-streaming answer takes as long as the stream would have taken.
        events = len(stream_events(script)) if script.delay_ms else 1
        await watch.sleep(pause_ms(script, events) / 1000)
        answer = converse_response(script, latency_ms(script, events))
        payload = _JSON_ENCODER.encode(answer).encode()
        length = (b"content-length", str(len(payload)).encode("ascii"))
        await send(_start(200, request_id, _JSON, length))
        if script.disconnect_after is not None:
            await send(
                {
                    "type": "http.response.body",
                    "body": payload[: len(payload) // 2],
                    "more_body": True,
                }
            )
            raise EmulatedDisconnect
        await send({"type": "http.response.body", "body": payload})

    async def _invoke_claude(
        self,
        model_id: str,
        body: bytes,
        stream: bool,
        request_id: bytes,
        send: Send,
        watch: Watch,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        request = read_claude_body(body)
        guardrail = read_invoke_guardrail(headers, request)
        view = converse_view(request)
        if guardrail is not None:
            view["guardrailConfig"] = guardrail.converse_view()  # for `echo`
        script = parse_script(view, defaults=self._defaults, guardrail=guardrail)
        self._check_fault(script.fault)
        if stream:
            events = len(stream_events(script))
            plan = claude_stream_plan(script, model_id, latency_ms(script, events))
            start = _start(200, request_id, _EVENTSTREAM)
            await send_plan(plan, start, send, watch)
            return
        events = len(stream_events(script)) if script.delay_ms else 1
        await watch.sleep(pause_ms(script, events) / 1000)
        payload = _JSON_ENCODER.encode(claude_message(script, model_id)).encode()
        usage = script.usage
        await send(
            _start(
                200,
                request_id,
                _JSON,
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"x-amzn-bedrock-input-token-count", str(usage.input_tokens).encode()),
                (b"x-amzn-bedrock-output-token-count", str(usage.output_tokens).encode()),
                (b"x-amzn-bedrock-invocation-latency", str(latency_ms(script, events)).encode()),
            )
        )
        await send({"type": "http.response.body", "body": payload})

    async def _count_tokens(
        self, model_id: str, body: bytes, request_id: bytes, send: Send
    ) -> None:
        """CountTokens: the input tokens the same request would be billed (Claude only)."""
        if not is_claude(model_id):
            raise ServiceError(
                "ValidationException", "The provided model doesn't support counting tokens."
            )
        try:
            request = json.loads(body)
            source = request["input"]
        except (ValueError, KeyError, TypeError):
            raise ServiceError(
                "ValidationException", "Malformed input request: input is required."
            ) from None
        if isinstance(source, dict) and isinstance(source.get("invokeModel"), dict):
            raw = base64.b64decode(str(source["invokeModel"].get("body") or ""))
            view = converse_view(read_claude_body(raw))
        elif isinstance(source, dict) and isinstance(source.get("converse"), dict):
            view = dict(source["converse"])
        else:
            raise ServiceError(
                "ValidationException",
                "Malformed input request: input must be invokeModel or converse.",
            )
        script = parse_script(view, defaults=self._defaults)
        self._check_fault(script.fault)
        payload = _JSON_ENCODER.encode({"inputTokens": script.usage.input_tokens}).encode()
        length = (b"content-length", str(len(payload)).encode("ascii"))
        await send(_start(200, request_id, _JSON, length))
        await send({"type": "http.response.body", "body": payload})

    async def _invoke(
        self, model_id: str, body: bytes, request_id: bytes, send: Send, watch: Watch
    ) -> None:
        request = read_embedding_request(model_id, body)
        texts: list[str] = []
        directive: str | None = None
        for text in request.texts:
            cleaned, found = split_directive(text)
            if found is not None and directive is not None:
                raise ServiceError(
                    "ValidationException", "Only one @emulator directive is allowed."
                )
            texts.append(cleaned)
            directive = directive if found is None else found
        script = parse_invoke_script(directive, defaults=self._defaults)
        self._check_fault(script.fault)
        await watch.sleep(script.delay_ms / 1000)
        payload, tokens = render_embeddings(dataclasses.replace(request, texts=texts))
        await send(
            _start(
                200,
                request_id,
                _JSON,
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"x-amzn-bedrock-input-token-count", str(tokens).encode("ascii")),
                (b"x-amzn-bedrock-invocation-latency", str(round(script.delay_ms)).encode()),
            )
        )
        await send({"type": "http.response.body", "body": payload})


def create_emulator_app(*, default_script: Mapping[str, Any] | None = None) -> BedrockEmulator:
    """A new emulator; `default_script` applies to every request, under its own directive.

    Each app keeps its own `fail_times` counters, so tests using separate apps never share
    state. An invalid default script raises `ServiceError` here rather than on each request.
    """
    return BedrockEmulator(default_script=default_script)
