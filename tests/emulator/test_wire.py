"""The HTTP surface as bytes: auth, routing, error headers, frames, pacing and app state."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer

from gateway.emulator import ScriptError, create_emulator_app
from gateway.emulator import app as app_module
from tests.emulator.conftest import user
from tests.servers import ServerThread, serve

SIGNED = {
    "authorization": "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/bedrock/aws4_request"
}
CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


def converse_body(text: str = "hi", script: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"messages": user(text, script)}).encode()


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, content=body, headers=SIGNED if headers is None else headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Basic dGVzdDp0ZXN0"},
        {"authorization": "Bearer"},
        {"authorization": "AWS4-HMAC-SHA256"},
    ],
)
async def test_unsigned_requests_get_403(server: ServerThread, headers: dict[str, str]) -> None:
    response = await post(f"{server.url}/model/m/converse", converse_body(), headers)
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}


async def test_bearer_tokens_are_accepted(server: ServerThread) -> None:
    response = await post(
        f"{server.url}/model/m/converse", converse_body(), {"authorization": "Bearer abc"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/model/m/converse"),
        ("POST", "/model/m/chat"),
        ("POST", "/models"),
        ("POST", "/model//converse"),
    ],
)
async def test_unknown_operations_get_404(server: ServerThread, method: str, path: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.request(method, server.url + path, headers=SIGNED, content=b"{}")
    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"] == "UnknownOperationException"


async def test_error_responses_are_shaped_like_bedrock(server: ServerThread) -> None:
    script = {"error": {"type": "ModelErrorException", "message": "upstream failed"}}
    response = await post(f"{server.url}/model/m/converse", converse_body("x", script))
    assert response.status_code == 424
    assert response.headers["x-amzn-errortype"] == "ModelErrorException" + CORAL
    assert response.headers["content-type"] == "application/json"
    assert len(response.headers["x-amzn-requestid"]) == 36
    assert response.content == b'{"message": "upstream failed"}'


@pytest.mark.parametrize("body", [b"not json", b"[]", b'"text"'])
async def test_bodies_that_are_not_json_objects(server: ServerThread, body: bytes) -> None:
    response = await post(f"{server.url}/model/m/converse-stream", body)
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"].startswith("ValidationException:")
    assert "Malformed input request" in response.json()["message"]


async def test_answers_are_deterministic(server: ServerThread) -> None:
    body = converse_body("same question", {"tool_calls": [{"name": "f"}], "reply": "r"})
    first, second = [
        await post(f"{server.url}/model/m/{op}", body) for op in ("converse", "converse")
    ]
    assert first.content == second.content
    streams = [await post(f"{server.url}/model/m/converse-stream", body) for _ in range(2)]
    assert streams[0].content == streams[1].content


async def test_stream_bytes_and_model_stream_errors(server: ServerThread) -> None:
    script = {
        "stream_error": {
            "after_events": 1,
            "message": "Model failed",
            "original_status_code": 429,
            "original_message": "Too many tokens",
        }
    }
    response = await post(f"{server.url}/model/m/converse-stream", converse_body("x", script))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(response.content)
    start, error = list(buffer)
    assert start.headers[":event-type"] == "messageStart"
    assert error.headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(error.payload) == {
        "message": "Model failed",
        "originalStatusCode": 429,
        "originalMessage": "Too many tokens",
    }


async def test_stream_pacing(server: ServerThread) -> None:
    script = {"reply": "a b c", "delay_ms": 40, "first_token_delay_ms": 150}
    arrivals: list[tuple[str, float]] = []
    buffer = EventStreamBuffer()
    async with httpx.AsyncClient(timeout=10) as client:
        began = time.monotonic()
        async with client.stream(
            "POST",
            f"{server.url}/model/m/converse-stream",
            content=converse_body("x", script),
            headers=SIGNED,
        ) as response:
            async for chunk in response.aiter_raw():
                buffer.add_data(chunk)
                arrivals.extend(
                    (m.headers[":event-type"], time.monotonic() - began) for m in buffer
                )
    names = [name for name, _ in arrivals]
    assert names == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert arrivals[1][1] - arrivals[0][1] >= 0.18  # 40 ms + 150 ms before the first token
    assert arrivals[-1][1] - arrivals[1][1] >= 0.2  # five more 40 ms gaps
    assert arrivals[-1][1] < 3


async def test_converse_waits_as_long_as_its_stream(server: ServerThread) -> None:
    began = time.monotonic()
    response = await post(
        f"{server.url}/model/m/converse", converse_body("x", {"reply": "a", "delay_ms": 30})
    )
    elapsed = time.monotonic() - began
    # messageStart, delta, stop, messageStop, metadata: four 30 ms gaps.
    assert response.json()["metrics"] == {"latencyMs": 120}
    assert 0.12 <= elapsed < 3


class AsgiCall:
    """Drive the app directly: a request body, then (optionally) the client going away."""

    def __init__(self, body: bytes, *, disconnect: bool = False) -> None:
        self.messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": body, "more_body": False}
        ]
        self.disconnect = disconnect
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        if self.disconnect:
            return {"type": "http.disconnect"}
        await asyncio.sleep(30)
        raise AssertionError("the app waited for a client that never left")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self, app: Any, path: str, *, raw_path: bool = True) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": path,
            "root_path": "",
            "headers": [(b"authorization", SIGNED["authorization"].encode())],
        }
        if raw_path:
            scope["raw_path"] = path.encode()
        await asyncio.wait_for(app(scope, self.receive, self.send), timeout=5)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


async def test_pacing_stops_when_the_client_leaves() -> None:
    call = AsgiCall(converse_body("x", {"delay_ms": 10_000}), disconnect=True)
    began = time.monotonic()
    await call.run(create_emulator_app(), "/model/m/converse-stream")
    assert time.monotonic() - began < 1
    assert [m["type"] for m in call.sent] == ["http.response.start", "http.response.body"]


async def test_model_ids_are_percent_decoded_with_or_without_raw_path() -> None:
    app = create_emulator_app()
    for raw_path in (True, False):
        call = AsgiCall(converse_body())
        path = (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile"
            "%2Finvalid/converse"
        )
        await call.run(
            app,
            path if raw_path else path.replace("%3A", ":").replace("%2F", "/"),
            raw_path=raw_path,
        )
        # The decoded id ends in "invalid", so the model check sees it whole.
        assert call.status == 400
        assert json.loads(call.sent[1]["body"]) == {
            "message": "The provided model identifier is invalid."
        }


async def test_failure_counters_are_per_app_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "MAX_FAILURE_KEYS", 2)
    app = create_emulator_app()

    async def status(key: str) -> int:
        call = AsgiCall(converse_body("x", {"fail_times": 1, "key": key}))
        await call.run(app, "/model/m/converse")
        return call.status

    assert [await status(k) for k in ("a", "a", "b", "c")] == [429, 200, 429, 429]
    assert await status("a") == 429  # "a" was the oldest of three keys: forgotten, counting anew
    assert await status("c") == 200
    other = AsgiCall(converse_body("x", {"fail_times": 1, "key": "c"}))
    await other.run(create_emulator_app(), "/model/m/converse")
    assert other.status == 429  # a fresh app has fresh counters


def test_default_script() -> None:
    with serve(
        create_emulator_app(default_script={"reply": "from defaults", "usage": {"inputTokens": 9}})
    ) as running:
        plain = httpx.post(
            f"{running.url}/model/m/converse", content=converse_body(), headers=SIGNED, timeout=10
        )
        mine = httpx.post(
            f"{running.url}/model/m/converse",
            content=converse_body("x", {"reply": "own"}),
            headers=SIGNED,
            timeout=10,
        )
    assert plain.json()["output"]["message"]["content"] == [{"text": "from defaults"}]
    assert plain.json()["usage"]["inputTokens"] == 9
    assert mine.json()["output"]["message"]["content"] == [{"text": "own"}]
    with pytest.raises(ScriptError, match="unknown key 'replyy'"):
        create_emulator_app(default_script={"replyy": "typo"})


def test_sync_boto3_client(server: ServerThread) -> None:
    boto3 = pytest.importorskip("boto3")  # the gateway itself only needs aiobotocore
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )
    try:
        response = client.converse_stream(modelId="m", messages=user("x", {"reply": "sync works"}))
        events = list(response["stream"])
    finally:
        client.close()
    assert (
        "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
        == "sync works"
    )
