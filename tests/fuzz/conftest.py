"""In-process harness for the fuzz tests: the real app, a faithful fake Bedrock, no sockets.

Thousands of examples have to run in seconds, so the app is driven through
`httpx.ASGITransport` on a private event loop, with its lifespan running (usage store,
recorder, limiter) exactly as under uvicorn.

`FakeBedrock` is faithful where it matters for finding our bugs. Every call goes through
botocore's serializer for bedrock-runtime, as in production (where `gateway/bedrock/client.py`
turns botocore's client-side `parameter_validation` off): whatever that raises, the gateway
meets in production too. Then the fake checks the request as Bedrock does on its side:
against the same service model (lengths, ranges, patterns), as the emulator checks a
conversation, and by the emulator's rules per embedding model family; each refusal is a
`ValidationException`. Answers are small and built from what went over the wire.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.bedrock.client import BedrockError, InvokeResult
from gateway.config import GatewayConfig
from gateway.emulator.conversation import read_conversation
from gateway.emulator.embeddings import read_embedding_request, render_embeddings
from gateway.emulator.errors import ServiceError
from gateway.emulator.script import default_reply
from tests.fullpath.conftest import API_KEY, sha
from tests.harness import EventList

_BILLABLE = ("/v1/chat/completions", "/v1/embeddings")

# Reproducible in CI (derandomize), no example database written to the checkout, and no
# per-example deadline: the first example pays for botocore's model loading.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _storable(text: str) -> str:
    """What a real service could send back: valid UTF-8 (no lone surrogates)."""
    return text.encode("utf-8", "replace").decode("utf-8")


class FakeBedrock:
    """A `BedrockClient` that validates like botocore and answers like a small model."""

    def __init__(self) -> None:
        self._model = botocore.session.get_session().get_service_model("bedrock-runtime")
        self._serializer = create_serializer(self._model.metadata["protocol"], False)

    def _on_the_wire(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """What Bedrock receives, once it has accepted the request."""
        model = self._model.operation_model(operation)
        request = self._serializer.serialize_to_request(dict(params), model)
        try:
            report = ParamValidator().validate(dict(params), model.input_shape)
        except RecursionError:
            raise BedrockError("ValidationException", "too deeply nested", status=400) from None
        if report.has_errors():
            raise BedrockError("ValidationException", report.generate_report(), status=400)
        body = request["body"]
        if operation == "InvokeModel":
            return {}
        wire: dict[str, Any] = json.loads(body) if body else {}
        return wire

    def _answer(self, wire: Mapping[str, Any]) -> tuple[str, dict[str, int]]:
        try:
            conversation = read_conversation(wire)
        except ServiceError as exc:
            raise BedrockError(exc.name, exc.message, status=exc.status) from None
        reply = _storable(default_reply(conversation.last_user_text))
        usage = {
            "inputTokens": max(1, conversation.input_chars // 4),
            "outputTokens": len(reply.split()),
        }
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        return reply, usage

    async def converse(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> dict[str, Any]:
        reply, usage = self._answer(self._on_the_wire("Converse", {"modelId": model_id, **request}))
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
            "stopReason": "end_turn",
            "usage": usage,
            "metrics": {"latencyMs": 1},
        }

    async def converse_stream(
        self, model_id: str, request: Mapping[str, Any], *, region: str | None = None
    ) -> EventList:
        wire = self._on_the_wire("ConverseStream", {"modelId": model_id, **request})
        reply, usage = self._answer(wire)
        return EventList(
            [
                {"messageStart": {"role": "assistant"}},
                {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": reply}}},
                {"contentBlockStop": {"contentBlockIndex": 0}},
                {"messageStop": {"stopReason": "end_turn"}},
                {"metadata": {"usage": usage, "metrics": {"latencyMs": 1}}},
            ]
        )

    async def invoke_model(
        self, model_id: str, body: bytes, *, region: str | None = None
    ) -> InvokeResult:
        self._on_the_wire(
            "InvokeModel",
            {
                "modelId": model_id,
                "body": body,
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        try:
            payload, tokens = render_embeddings(read_embedding_request(model_id, body))
        except ServiceError as exc:
            raise BedrockError(exc.name, exc.message, status=exc.status) from None
        return InvokeResult(payload, str(tokens))


def fuzz_config(tmp: Path) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "bedrock": {"region": "us-east-1"},
            "models": [
                {
                    "name": "claude-3-7-sonnet",
                    "bedrock_id": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                    "aliases": ["gpt-4o"],
                    "reasoning": {"supported": True},
                    "pricing": {"input_per_1k": "0.003", "output_per_1k": "0.015"},
                },
                {"name": "nova-micro", "bedrock_id": "amazon.nova-micro-v1:0"},
                {
                    "name": "titan-embed-text-v2",
                    "bedrock_id": "amazon.titan-embed-text-v2:0",
                    "kind": "embedding",
                },
                {
                    "name": "titan-embed-text-v1",
                    "bedrock_id": "amazon.titan-embed-text-v1",
                    "kind": "embedding",
                },
                {"name": "cohere-en", "bedrock_id": "cohere.embed-english-v3", "kind": "embedding"},
            ],
            # Remote images would mean traffic off this machine; the fetcher has its own tests.
            "images": {"fetch_remote": False},
            "auth": {"keys": [{"id": "fuzz", "key_sha256": sha(API_KEY), "team": "fuzzers"}]},
            "usage": {
                "store": f"sqlite:///{tmp / 'usage.db'}",
                "flush_interval_ms": 20,
                "spill_path": str(tmp / "usage.spill.jsonl"),
            },
            "server": {"max_body_bytes": 2_000_000},
            "logging": {"format": "text"},
        }
    )


class InProcessGateway:
    """The app, its lifespan entered, on an event loop of its own; driven from sync tests.

    Counts the requests it sends to billable routes, so that a test can check at the end
    that the ledger holds exactly one record for each: a request that broke the recorder
    (an unstorable field, say) would show there even if its answer looked fine.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.app = create_app(config, bedrock=FakeBedrock(), registry=CollectorRegistry())
        self.billable = 0
        self.loop = asyncio.new_event_loop()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._run(self._lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://127.0.0.1",
            headers={"authorization": f"Bearer {API_KEY}"},
        )

    def _run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, 30))

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if path in _BILLABLE:  # whatever the method: a 405 is recorded too
            self.billable += 1
        sent = {"content-type": "application/json", **(headers or {})}
        response: httpx.Response = self._run(
            self.client.request(method, path, content=content, headers=sent)
        )
        return response

    def post(
        self, path: str, *, content: bytes, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        return self.request("POST", path, content=content, headers=headers)

    def post_json(self, path: str, body: Any) -> httpx.Response:
        """`body` as JSON text, with lone surrogates as `\\udxxx` escapes (valid JSON)."""
        return self.post(path, content=json.dumps(body).encode())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def ledger_rows(self) -> int:
        """Records in the store once the recorder has written everything it holds."""
        recorder = self.app.state.gateway.recorder
        for _ in range(200):  # at most 10 s
            if recorder.depth == 0:
                break
            self._run(asyncio.sleep(0.05))
        assert recorder.depth == 0, f"{recorder.depth} usage records never reached the store"
        assert recorder.lost == 0
        path = self.config.usage.store.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            (count,) = conn.execute("SELECT count(*) FROM usage_records").fetchone()
        return int(count)

    def close(self) -> None:
        self._run(self.client.aclose())
        self._run(self._lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(fuzz_config(tmp_path_factory.mktemp("fuzz")))
    try:
        yield gateway
    finally:
        gateway.close()


def assert_openai_answer(response: httpx.Response) -> None:
    """Never a 5xx; an error is a 4xx in OpenAI's shape; a success is well formed."""
    assert response.status_code < 500, (response.status_code, response.text[:2000])
    assert response.headers.get("x-request-id")
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json"
        data = response.json()
        assert set(data) == {"error"}, data
        error = data["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str) and error["type"]
        assert error["param"] is None or isinstance(error["param"], str)
        assert error["code"] is None or isinstance(error["code"], str)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
        return
    assert response.status_code == 200
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.endswith("data: [DONE]\n\n"), response.text[-500:]
    else:
        response.json()
