"""aiobotocore's aiohttp session, as `AioBedrockClient` tunes it, against servers that misbehave.

Each test drives `AioBedrockClient` (aiobotocore serializes, signs and parses; its aiohttp
session, configured by `gateway.bedrock.client.aio_config`, carries the bytes) against a
`ScriptedServer` on 127.0.0.1. They are about behaviour the gateway relies on: connections
reused and released (never handed to a caller who left), timeouts, broken answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from aiobotocore.httpsession import AIOHTTPSession

import gateway.bedrock.client as bedrock_client
from gateway.bedrock.client import AioBedrockClient, BedrockError
from gateway.config import BedrockConfig
from gateway.emulator.eventstream import event_frame
from tests.bedrock.scripted import (
    ANSWER,
    CONVERSE_ANSWER,
    MODEL_ID,
    REQUEST,
    Exchange,
    ScriptedServer,
    client_for,
    http_answer,
)
from tests.servers import free_port


def session_of(client: AioBedrockClient) -> Any:
    return client._client(None)._endpoint.http_session


async def test_the_session_is_aiohttp_tuned_from_the_bedrock_config() -> None:
    async with ScriptedServer() as server:
        config = {"max_connections": 7, "connect_timeout_s": 2.5, "read_timeout_s": 42}
        async with client_for(server, **config) as client:
            session = session_of(client)
            assert isinstance(session, AIOHTTPSession)
            assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"
            raw = client._client(None)
            assert raw.meta.config.max_pool_connections == 7
            assert raw.meta.config.connect_timeout == 2.5
            assert raw.meta.config.read_timeout == 42
            assert raw.meta.config.tcp_keepalive is True
            assert raw.meta.config.connector_args["keepalive_timeout"] == bedrock_client.KEEPALIVE_S
            (aiohttp_session,) = session._sessions.values()
            assert aiohttp_session.connector.limit == 7


async def test_calls_one_after_another_share_one_connection() -> None:
    async with ScriptedServer() as server, client_for(server) as client:
        for _ in range(5):
            answer = await client.converse(MODEL_ID, REQUEST)
            assert answer["output"] == ANSWER["output"]
        assert server.accepted == 1
        assert [r.connection for r in server.received] == [0] * 5
        sent = server.received[0]
        assert sent.method == "POST"
        assert sent.target == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        assert json.loads(sent.body) == REQUEST
        assert sent.headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("split", [1, 3, 50], ids=["byte-by-byte", "3-bytes", "50-bytes"])
async def test_an_answer_split_anywhere_is_read_whole(split: int) -> None:
    async def dribble(exchange: Exchange) -> None:
        for i in range(0, len(CONVERSE_ANSWER), split):
            exchange.writer.write(CONVERSE_ANSWER[i : i + split])
            await exchange.writer.drain()
            await asyncio.sleep(0)

    async with ScriptedServer(dribble) as server, client_for(server) as client:
        assert (await client.converse(MODEL_ID, REQUEST))["output"] == ANSWER["output"]
        assert (await client.converse(MODEL_ID, REQUEST))["output"] == ANSWER["output"]
        assert server.accepted == 1


async def test_a_chunked_answer_is_decoded() -> None:
    async def chunked(exchange: Exchange) -> None:
        exchange.writer.write(http_answer(json.dumps(ANSWER).encode(), chunked=True))

    async with ScriptedServer(chunked) as server, client_for(server) as client:
        for _ in range(2):
            assert (await client.converse(MODEL_ID, REQUEST))["usage"] == ANSWER["usage"]
        assert server.accepted == 1


async def test_an_interim_100_continue_is_skipped() -> None:
    async def interim(exchange: Exchange) -> None:
        exchange.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + CONVERSE_ANSWER)

    async with ScriptedServer(interim) as server, client_for(server) as client:
        assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"


async def test_connection_close_is_honoured_and_the_next_call_reconnects() -> None:
    async def close_after(exchange: Exchange) -> None:
        exchange.writer.write(
            http_answer(json.dumps(ANSWER).encode(), headers=("connection: close",))
        )
        exchange.keep_open = False

    async with ScriptedServer(close_after) as server, client_for(server) as client:
        for _ in range(3):
            assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"
        assert server.accepted == 3


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def close_quietly(exchange: Exchange) -> None:
        exchange.writer.write(CONVERSE_ANSWER)  # keep-alive promised, then closed anyway
        exchange.keep_open = False

    async with ScriptedServer(close_quietly) as server, client_for(server) as client:
        for _ in range(3):
            assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"
            await asyncio.sleep(0.05)  # the close reaches us while the connection is idle
        assert server.accepted == 3


async def test_connections_idle_past_the_keepalive_limit_are_replaced(monkeypatch: Any) -> None:
    monkeypatch.setattr(bedrock_client, "KEEPALIVE_S", 0.05)
    async with ScriptedServer() as server, client_for(server) as client:
        await client.converse(MODEL_ID, REQUEST)
        await client.converse(MODEL_ID, REQUEST)  # at once: reused
        await asyncio.sleep(0.1)
        await client.converse(MODEL_ID, REQUEST)  # after the limit: a new connection
        assert [r.connection for r in server.received] == [0, 0, 1]
        # ...and the stale one was closed, not leaked (the new one may follow it when the
        # machine is slow enough for it to idle past the limit too, hence at least one).
        for _ in range(100):
            if server.closed_by_client:
                break
            await asyncio.sleep(0.01)
        assert server.closed_by_client >= 1
        assert server.open_now <= 1


async def test_the_pool_never_opens_more_than_max_connections() -> None:
    async def slow(exchange: Exchange) -> None:
        await asyncio.sleep(0.05)
        exchange.writer.write(CONVERSE_ANSWER)

    async with ScriptedServer(slow) as server, client_for(server, max_connections=2) as client:
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.converse(MODEL_ID, REQUEST) for _ in range(7))), 10
        )
        assert [a["stopReason"] for a in answers] == ["end_turn"] * 7
        assert server.most_open == 2
        assert server.accepted == 2


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def silent(exchange: Exchange) -> None:
        await asyncio.sleep(30)

    async with (
        ScriptedServer(silent) as server,
        client_for(server, read_timeout_s=0.2) as client,
    ):
        started = asyncio.get_running_loop().time()
        with pytest.raises(BedrockError) as caught:
            await client.converse(MODEL_ID, REQUEST)
        assert caught.value.name == "ReadTimeout"
        assert 0.15 < asyncio.get_running_loop().time() - started < 5


async def test_a_slow_but_steady_answer_is_not_a_timeout() -> None:
    # The read timeout is the longest silence, not the longest answer.
    async def steady(exchange: Exchange) -> None:
        for i in range(0, len(CONVERSE_ANSWER), 40):
            exchange.writer.write(CONVERSE_ANSWER[i : i + 40])
            await exchange.writer.drain()
            await asyncio.sleep(0.05)

    async with (
        ScriptedServer(steady) as server,
        client_for(server, read_timeout_s=0.3) as client,
    ):
        assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without a word
        CONVERSE_ANSWER[:60],  # closed inside the headers
        CONVERSE_ANSWER[:-20],  # closed inside the body
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n{}",  # malformed framing
    ],
    ids=["nothing", "half-headers", "half-body", "not-http", "bad-length"],
)
async def test_broken_answers_are_connection_errors(answer: bytes) -> None:
    async def broken(exchange: Exchange) -> None:
        exchange.writer.write(answer)
        exchange.keep_open = False

    async with ScriptedServer(broken) as server, client_for(server) as client:
        with pytest.raises(BedrockError) as caught:
            await client.converse(MODEL_ID, REQUEST)
        assert caught.value.name == "ConnectionError"
        server.answer = lambda exchange: _write(exchange, CONVERSE_ANSWER)
        assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"


async def _write(exchange: Exchange, data: bytes) -> None:
    exchange.writer.write(data)


async def test_nothing_listening_is_a_connection_error() -> None:
    config = BedrockConfig(region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}")
    async with AioBedrockClient(config, credentials=_Keys()) as client:
        with pytest.raises(BedrockError) as caught:
            await client.converse(MODEL_ID, REQUEST)
        assert caught.value.name == "ConnectionError"


async def test_a_cancelled_call_hangs_up_and_frees_its_slot() -> None:
    gate = asyncio.Event()

    async def held(exchange: Exchange) -> None:
        if len(exchange.request.body) and not gate.is_set():
            gate.set()
            await asyncio.sleep(30)
        exchange.writer.write(CONVERSE_ANSWER)

    async with ScriptedServer(held) as server, client_for(server, max_connections=1) as client:
        call = asyncio.create_task(client.converse(MODEL_ID, REQUEST))
        await asyncio.wait_for(gate.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The only slot is free again, on a new connection: the old one was dropped.
        answer = await asyncio.wait_for(client.converse(MODEL_ID, REQUEST), 5)
        assert answer["stopReason"] == "end_turn"
        assert server.accepted == 2


async def test_a_caller_cancelled_while_queued_for_a_connection_leaks_no_slot() -> None:
    release = asyncio.Event()

    async def held(exchange: Exchange) -> None:
        await release.wait()
        exchange.writer.write(CONVERSE_ANSWER)

    async with ScriptedServer(held) as server, client_for(server, max_connections=1) as client:
        first = asyncio.create_task(client.converse(MODEL_ID, REQUEST))
        await asyncio.sleep(0.05)  # the only connection is busy with `first`
        queued = [asyncio.create_task(client.converse(MODEL_ID, REQUEST)) for _ in range(3)]
        await asyncio.sleep(0.05)
        for task in queued:
            task.cancel()
        release.set()
        assert (await asyncio.wait_for(first, 5))["stopReason"] == "end_turn"
        for task in queued:
            with pytest.raises(asyncio.CancelledError):
                await task
        # The connection went back to the pool, not to a caller who had left.
        answer = await asyncio.wait_for(client.converse(MODEL_ID, REQUEST), 5)
        assert answer["stopReason"] == "end_turn"
        assert server.accepted == 1


async def test_closing_the_client_fails_the_calls_in_flight_at_once() -> None:
    async def silent(exchange: Exchange) -> None:
        await asyncio.sleep(30)

    async with ScriptedServer(silent) as server:
        client = client_for(server, max_connections=1)
        await client.__aenter__()
        in_flight = asyncio.create_task(client.converse(MODEL_ID, REQUEST))
        queued = asyncio.create_task(client.converse(MODEL_ID, REQUEST))
        await asyncio.sleep(0.05)
        await client.__aexit__(None, None, None)
        for task in (in_flight, queued):
            with pytest.raises(BedrockError) as caught:
                await asyncio.wait_for(task, 5)
            assert caught.value.name == "ConnectionError"


def _stream_answer(texts: list[str]) -> bytes:
    frames = [event_frame("messageStart", b'{"role":"assistant"}')]
    for text in texts:
        payload = json.dumps({"contentBlockIndex": 0, "delta": {"text": text}}).encode()
        frames.append(event_frame("contentBlockDelta", payload))
    frames.append(event_frame("messageStop", b'{"stopReason":"end_turn"}'))
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    return head + b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"


async def test_a_stream_read_to_the_end_gives_its_connection_back() -> None:
    texts = [f"word{i} " for i in range(20)]

    async def stream(exchange: Exchange) -> None:
        data = _stream_answer(texts)
        for i in range(0, len(data), 33):  # frames split across reads
            exchange.writer.write(data[i : i + 33])
            await exchange.writer.drain()

    async with ScriptedServer(stream) as server, client_for(server) as client:
        for _ in range(2):
            events = [e async for e in await client.converse_stream(MODEL_ID, REQUEST)]
            deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events[1:-1]]
            assert deltas == texts
            assert events[-1] == {"messageStop": {"stopReason": "end_turn"}}
        assert server.accepted == 1


async def test_a_stream_closed_early_drops_its_connection() -> None:
    hung_up = asyncio.Event()

    async def endless(exchange: Exchange) -> None:
        if not exchange.request.target.endswith("/converse-stream"):
            exchange.writer.write(CONVERSE_ANSWER)
            return
        data = _stream_answer(["x"])
        start = data.index(b"\r\n\r\n") + 4
        first_chunk_end = data.index(b"\r\n", data.index(b"\r\n", start) + 2) + 2
        exchange.writer.write(data[: first_chunk_end + 10])  # one event, then a stall
        with contextlib.suppress(ConnectionError):
            assert await exchange.reader.read() == b""
        hung_up.set()
        exchange.keep_open = False

    async with ScriptedServer(endless) as server, client_for(server) as client:
        stream = await client.converse_stream(MODEL_ID, REQUEST)
        events = aiter(stream)
        assert "messageStart" in await asyncio.wait_for(anext(events), 5)
        await stream.aclose()
        await asyncio.wait_for(hung_up.wait(), 5)
        assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"
        assert server.accepted == 2


async def test_a_large_body_read_slowly_arrives_whole() -> None:
    # More than the HTTP client buffers before it stops reading from the socket.
    body = bytes(range(256)) * (3 * 4096 + 1)

    async def big(exchange: Exchange) -> None:
        exchange.writer.write(http_answer(body, headers=("x-amzn-bedrock-input-token-count: 9",)))

    async with ScriptedServer(big) as server, client_for(server) as client:
        raw = client._client(None)
        response = await raw.invoke_model(modelId=MODEL_ID, body=b"{}")
        stream = response["body"]
        pieces = []
        while piece := await stream.read(65536):
            pieces.append(piece)
            await asyncio.sleep(0)
        assert b"".join(pieces) == body
        assert max(len(p) for p in pieces) == 65536
        result = await client.invoke_model(MODEL_ID, b"{}")
        assert result.body == body and result.input_token_count == "9"
        assert server.accepted == 1


async def test_a_proxied_endpoint_goes_through_aiohttp(monkeypatch: Any) -> None:
    # Proxies (HTTPS_PROXY, HTTP_PROXY) are aiobotocore's aiohttp session's job.
    async with ScriptedServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        config = BedrockConfig(region="us-east-1", endpoint_url="http://bedrock.invalid")
        async with AioBedrockClient(config, credentials=_Keys()) as client:
            assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"
        # A proxy is sent the absolute URL of the request.
        assert proxy.received[0].target.startswith("http://bedrock.invalid/model/")


class _Keys:
    access_key = "AKIDEXAMPLE"
    secret_key = "secret"
