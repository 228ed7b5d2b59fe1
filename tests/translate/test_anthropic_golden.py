"""Goldens of the Messages pairs: Messages -> Invoke body, Messages <-> Converse, both streams.

Files under tests/golden/anthropic/ (`--update-golden` rewrites the outputs; review the diff):

* `invoke/<case>.request.json` (`{"anthropic_beta": header, "body": Messages body}`)
  -> `<case>.invoke.json` (the body Bedrock gets, betas and dropped fields);
* `converse/<case>.request.json` -> `<case>.converse.json` (bytes as base64);
* `invoke_stream/<case>.chunks.jsonl` (the Anthropic events Bedrock puts in `chunk`
  frames) -> `<case>.sse`: framed as AWS event-stream bytes, read back by aiobotocore
  whole and one byte at a time, then re-framed by `InvokeStreamEncoder`;
* `converse_stream/<case>.sse`: the ConverseStream goldens of tests/golden/stream/
  through `ConverseStreamEncoder`.

Every SSE output is also accumulated by the `anthropic` SDK's own stream code and checked
for what a client relies on (indexes in order, tool input JSON that parses, one stop).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from aiobotocore.eventstream import AioEventStream
from aiobotocore.parsers import AioEventStreamJSONParser
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from gateway.emulator.claude import chunk_frame
from gateway.translate.anthropic_messages.betas import DEFAULT_BETAS, parse_beta_header
from gateway.translate.anthropic_messages.converse import messages_to_converse
from gateway.translate.anthropic_messages.converse_stream import ConverseStreamEncoder
from gateway.translate.anthropic_messages.invoke import messages_to_invoke_body
from gateway.translate.anthropic_messages.invoke_stream import InvokeStreamEncoder
from tests.translate.test_stream_golden import aiobotocore_events, hydrate, read_jsonl

GOLDEN = Path(__file__).parent.parent / "golden" / "anthropic"
INVOKE = sorted(
    p.name.removesuffix(".request.json") for p in (GOLDEN / "invoke").glob("*.request.json")
)
CONVERSE = sorted(
    p.name.removesuffix(".request.json") for p in (GOLDEN / "converse").glob("*.request.json")
)
INVOKE_STREAM = sorted(
    p.name.removesuffix(".chunks.jsonl") for p in (GOLDEN / "invoke_stream").glob("*.chunks.jsonl")
)
STREAM_GOLDEN = Path(__file__).parent.parent / "golden" / "stream"
CONVERSE_STREAM = [
    "recorded-claude-text-then-tool",
    "recorded-claude-sonnet4-reasoning",
    "recorded-claude37-redacted-reasoning",
    "recorded-nova-micro-tool-use",
    "parallel-tool-calls",
    "no-message-stop",
    "content-filtered",
]
MODEL = "golden-model"

_INVOKE_STREAM_SHAPE = (
    botocore.session.get_session()
    .get_service_model("bedrock-runtime")
    .operation_model("InvokeModelWithResponseStream")
    .output_shape.members["body"]
)
_EVENT = TypeAdapter[RawMessageStreamEvent](RawMessageStreamEvent)


def _check(path: Path, actual: Any, update: bool, *, text: bool = False) -> None:
    if update:
        path.write_text(
            actual if text else json.dumps(actual, indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    assert path.exists(), f"no {path.name}: run pytest --update-golden and review it"
    expected = path.read_text(encoding="utf-8")
    assert (expected if text else json.loads(expected)) == actual


def _wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


@pytest.mark.parametrize("case", INVOKE)
def test_invoke_request_golden(case: str, update_golden: bool) -> None:
    source = json.loads((GOLDEN / "invoke" / f"{case}.request.json").read_text())
    call = messages_to_invoke_body(
        source["body"],
        header_betas=parse_beta_header([source.get("anthropic_beta", "")]),
        allowed_betas=DEFAULT_BETAS,
        drop_unsupported=False,
    )
    body = json.loads(call.body)
    # What Bedrock refuses as extraneous never reaches it; blocks are as the client sent them.
    assert not {"model", "stream", "metadata"} & set(body)
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    actual = {
        "body": body,
        "dropped_betas": call.dropped_betas,
        "dropped_params": call.dropped_params,
    }
    _check(GOLDEN / "invoke" / f"{case}.invoke.json", actual, update_golden)


@pytest.mark.parametrize("case", CONVERSE)
def test_converse_request_golden(case: str, update_golden: bool) -> None:
    source = json.loads((GOLDEN / "converse" / f"{case}.request.json").read_text())
    call = messages_to_converse(source["body"], drop_unsupported=False)
    actual = {"request": _wire(call.request), "dropped_params": call.dropped_params}
    _check(GOLDEN / "converse" / f"{case}.converse.json", actual, update_golden)


class _Body:
    """The slice of an aiohttp response that `AioEventStream` reads."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.content = self
        self._pieces = list(pieces)

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        for piece in self._pieces:
            yield piece, True


async def _invoke_events(pieces: Iterable[bytes]) -> list[dict[str, Any]]:
    stream = AioEventStream(
        _Body(pieces), _INVOKE_STREAM_SHAPE, AioEventStreamJSONParser(), "InvokeStream"
    )
    return [event async for event in stream]


def _sse_events(sse: bytes) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for frame in sse.decode().split("\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == event_line.removeprefix("event: ")
        out.append((data["type"], data))
    return out


def check_anthropic_stream(sse: bytes) -> Message:
    """What the SDK builds from the stream, after the properties every client relies on."""
    events = _sse_events(sse)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "message_start" and kinds[1] == "ping"
    assert kinds.count("message_stop") == 1 and kinds[-1] == "message_stop"
    assert kinds.count("message_delta") == 1
    starts = [data["index"] for kind, data in events if kind == "content_block_start"]
    assert starts == list(range(len(starts))), "block indexes are 0..n-1 in order"
    stops = [data["index"] for kind, data in events if kind == "content_block_stop"]
    assert stops == starts
    assert all("amazon-bedrock-invocationMetrics" not in data for _, data in events)
    snapshot: Message | None = None
    json_bufs: dict[int, bytes] = {}
    for kind, data in events:
        if kind == "ping":  # the SDK skips pings before accumulating
            continue
        snapshot = accumulate_event(
            event=_EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot is not None and snapshot.model == MODEL
    for block in snapshot.content:
        if block.type == "tool_use":
            assert isinstance(block.input, dict)
    return snapshot


@pytest.mark.parametrize("case", INVOKE_STREAM)
async def test_invoke_stream_golden(case: str, update_golden: bool) -> None:
    chunks = read_jsonl(GOLDEN / "invoke_stream" / f"{case}.chunks.jsonl")
    raw = b"".join(chunk_frame(chunk) for chunk in chunks)
    whole = await _invoke_events([raw])
    one_by_one = await _invoke_events([raw[i : i + 1] for i in range(len(raw))])
    assert one_by_one == whole

    encoder = InvokeStreamEncoder(model=MODEL)
    sse = b"".join(encoder.feed(event) for event in whole) + encoder.flush()
    message = check_anthropic_stream(sse)
    # Bedrock's invocation metrics are the ledger's numbers.
    metrics = chunks[-1].get("amazon-bedrock-invocationMetrics", {})
    assert encoder.usage.input_tokens == metrics["inputTokenCount"]
    assert encoder.usage.output_tokens == metrics["outputTokenCount"]
    assert encoder.usage.cache_read_tokens == metrics.get("cacheReadInputTokenCount", 0)
    assert encoder.usage.cache_write_tokens == metrics.get("cacheWriteInputTokenCount", 0)
    # A guardrail's verdict on the last chunk overrides Claude's own end_turn (CONTRACT v2).
    intervened = chunks[-1].get("amazon-bedrock-guardrailAction") == "INTERVENED"
    assert encoder.guardrail_intervened is intervened
    expected = "refusal" if intervened else chunks[-2]["delta"]["stop_reason"]
    assert message.stop_reason == expected
    _check(GOLDEN / "invoke_stream" / f"{case}.sse", sse.decode(), update_golden, text=True)


@pytest.mark.parametrize("case", CONVERSE_STREAM)
def test_converse_stream_golden(case: str, update_golden: bool) -> None:
    events = [hydrate(line) for line in read_jsonl(STREAM_GOLDEN / f"{case}.events.jsonl")]
    encoder = ConverseStreamEncoder(message_id="msg_golden", model=MODEL)
    sse = b"".join(encoder.feed(event) for event in events) + encoder.flush()
    check_anthropic_stream(sse)
    _check(GOLDEN / "converse_stream" / f"{case}.sse", sse.decode(), update_golden, text=True)


@pytest.mark.parametrize(
    "case", [c for c in CONVERSE_STREAM if (STREAM_GOLDEN / f"{c}.eventstream").exists()]
)
async def test_converse_capture_fed_one_byte_at_a_time(case: str) -> None:
    raw = (STREAM_GOLDEN / f"{case}.eventstream").read_bytes()

    def encode(events: list[dict[str, Any]]) -> bytes:
        encoder = ConverseStreamEncoder(message_id="msg_golden", model=MODEL)
        return b"".join(encoder.feed(event) for event in events) + encoder.flush()

    whole = encode(await aiobotocore_events([raw]))
    assert encode(await aiobotocore_events([raw[i : i + 1] for i in range(len(raw))])) == whole
    assert whole.decode() == (GOLDEN / "converse_stream" / f"{case}.sse").read_text()


def test_delta_bytes_pass_through_unchanged() -> None:
    """The hot event is copied, not re-encoded: what Bedrock sent is what the client reads."""
    raw = (
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"h\\u00e9"}}'
    )
    encoder = InvokeStreamEncoder(model=MODEL)
    assert (
        encoder.feed({"chunk": {"bytes": raw}})
        == b"event: content_block_delta\ndata: " + raw + b"\n\n"
    )
