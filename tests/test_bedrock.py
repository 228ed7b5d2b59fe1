"""`gateway.bedrock.client`: what the long-lived aiobotocore client puts on the wire."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send

import gateway
from gateway.bedrock.client import AioBedrockClient
from gateway.config import BedrockConfig
from gateway.emulator.app import create_emulator_app
from tests.servers import serve

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
REQUEST = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


class HeaderTap:
    """The emulator, remembering the headers of every request it was sent."""

    def __init__(self) -> None:
        self.emulator = create_emulator_app()
        self.headers: list[dict[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.headers.append(dict(scope["headers"]))
        await self.emulator(scope, receive, send)


def test_every_call_names_the_gateway_in_its_user_agent(monkeypatch: Any) -> None:
    # CloudTrail records the User-Agent: an operator can tell the gateway's calls apart.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    tap = HeaderTap()

    async def two_calls(url: str) -> None:
        async with AioBedrockClient(BedrockConfig(region="us-east-1", endpoint_url=url)) as client:
            for _ in range(2):
                answer = await client.converse(MODEL_ID, REQUEST)
                assert answer["stopReason"] == "end_turn"

    with serve(tap, lifespan="off") as server:
        asyncio.run(two_calls(server.url))

    agents = [headers[b"user-agent"].decode() for headers in tap.headers]
    assert len(agents) == 2
    assert agents[0] == agents[1]
    assert agents[0].startswith(f"bedrock-gateway/{gateway.__version__} aiobotocore/")
    assert " botocore/" in agents[0] and " Python/3." in agents[0]
    assert all(b"authorization" in headers for headers in tap.headers)
