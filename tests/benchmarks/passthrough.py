"""The minimal pass-through the gateway is compared with: the floor of what any Bedrock proxy costs.

Two starlette routes. `POST /passthrough` reads the body (a Converse request, JSON), sends
it to one fixed model with the gateway's own long-lived aiobotocore client (the same
`AioBedrockClient` and `AioConfig`, opened once in the lifespan) and answers with Bedrock's
JSON. `POST /passthrough-stream` sends the same kind of body to ConverseStream and writes
each event aiobotocore yields as one line of JSON, as it arrives: the least any streaming
proxy must do (decode Bedrock's event stream, re-encode each event). There is no authentication, no usage record, no metrics, no OpenAI translation and no
validation of our own: whatever the gateway does on top of this is its overhead.

    python -m tests.benchmarks.passthrough --port 8500 --endpoint-url http://127.0.0.1:8400

It is served like `bedrock-gateway serve` serves the gateway (uvicorn, `loop="auto"`,
`http="auto"`, no access log), so the two differ only in the application. AWS credentials
come from the environment (`AWS_ACCESS_KEY_ID=test`, `AWS_SECRET_ACCESS_KEY=test`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.bedrock.client import AioBedrockClient
from gateway.config import BedrockConfig

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def create_passthrough_app(bedrock: BedrockConfig, *, model_id: str = MODEL_ID) -> Starlette:
    clients: dict[str, AioBedrockClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AioBedrockClient(bedrock) as client:
            clients["bedrock"] = client
            yield

    async def passthrough(request: Request) -> Response:
        body: dict[str, Any] = json.loads(await request.body())
        answer = await clients["bedrock"].converse(model_id, body)
        answer.pop("ResponseMetadata", None)
        return Response(
            json.dumps(answer, separators=(",", ":")).encode(), media_type="application/json"
        )

    async def passthrough_stream(request: Request) -> Response:
        body: dict[str, Any] = json.loads(await request.body())
        stream = await clients["bedrock"].converse_stream(model_id, body)

        async def lines() -> AsyncIterator[bytes]:
            try:
                async for event in stream:
                    yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
            finally:
                await stream.aclose()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return Starlette(
        routes=[
            Route("/passthrough", passthrough, methods=["POST"]),
            Route("/passthrough-stream", passthrough_stream, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint-url", required=True, help="the emulator's base URL")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    config = BedrockConfig(region=args.region, endpoint_url=args.endpoint_url)
    uvicorn.run(
        create_passthrough_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
