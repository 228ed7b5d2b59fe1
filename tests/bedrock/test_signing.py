"""What the HTTP session puts on the wire is exactly what botocore signed.

SigV4 signs the method, the path as sent, the Host header, the other signed headers and
the SHA-256 of the body. An HTTP client that re-encodes the path, writes another Host (a
default port left in, say) or touches the body makes every real Bedrock call fail with
`InvalidSignatureException`, which the emulator (it does not check signatures) would never
show. So the server here recomputes each signature from the bytes it received.
"""

from __future__ import annotations

import json

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.emulator.eventstream import event_frame
from tests.bedrock.scripted import (
    CONVERSE_ANSWER,
    MODEL_ID,
    REQUEST,
    Exchange,
    Received,
    ScriptedServer,
    _Credentials,
    client_for,
    http_answer,
)


def signature_holds(received: Received, *, host: str | None = None) -> bool:
    """Recompute the request's SigV4 signature from what arrived (`host` to tamper)."""
    authorization = received.headers["authorization"]
    scope = authorization.split("Credential=")[1].split(",")[0].split("/")
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    signature = authorization.split("Signature=")[1]
    request = AWSRequest(
        method=received.method,
        url=f"http://{host or received.headers['host']}{received.target}",
        data=received.body,
        headers={name: received.headers[name] for name in signed if name != "host"},
    )
    request.context["timestamp"] = received.headers["x-amz-date"]
    credentials = Credentials(_Credentials.access_key, _Credentials.secret_key)
    signer = SigV4Auth(credentials, scope[3], scope[2])
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    return bool(signer.signature(string_to_sign, request) == signature)


async def answer(exchange: Exchange) -> None:
    target = exchange.request.target
    if target.endswith("/converse-stream"):
        frame = event_frame("messageStop", b'{"stopReason":"end_turn"}')
        exchange.writer.write(
            http_answer(frame, headers=("content-type: application/vnd.amazon.eventstream",))
        )
    elif target.endswith("/invoke"):
        exchange.writer.write(http_answer(b'{"embedding": [0.5]}'))
    else:
        exchange.writer.write(CONVERSE_ANSWER)


async def test_every_operation_arrives_as_signed() -> None:
    system = [{"text": "Ünïcödé, spaces & symbols: /?#[]@!$'()*+,;="}]
    async with ScriptedServer(answer) as server, client_for(server) as client:
        await client.converse(MODEL_ID, {**REQUEST, "system": system})
        stream = await client.converse_stream(MODEL_ID, REQUEST)
        assert [event async for event in stream] == [{"messageStop": {"stopReason": "end_turn"}}]
        await client.invoke_model("cohere.embed-english-v3", json.dumps({"texts": ["a"]}).encode())
        # A model id that is an ARN: slashes and colons in the path.
        arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.model-v1:0"
        await client.converse(arn, REQUEST)

    assert len(server.received) == 4
    for received in server.received:
        assert signature_holds(received), received.target
        # ...and the check can fail: the same request with another Host does not hold.
        assert not signature_holds(received, host="127.0.0.1")
    targets = [received.target for received in server.received]
    assert targets[0] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert targets[3] == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.model-v1%3A0/converse"
    )
    assert server.received[2].headers["content-type"] == "application/json"
