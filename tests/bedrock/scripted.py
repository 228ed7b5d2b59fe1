"""A Bedrock stand-in whose every answer a test writes byte for byte.

The emulator always speaks proper HTTP; the HTTP session must also survive servers that do
not: answers split anywhere, chunked bodies, connections closed early, silence, garbage.
`ScriptedServer` accepts connections on 127.0.0.1, reads each request (head and body) and
hands it to the test's `answer` coroutine, which writes whatever it likes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.bedrock.client import AioBedrockClient
from gateway.config import BedrockConfig

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
REQUEST = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
ANSWER = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hello"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    "metrics": {"latencyMs": 1},
}


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which accepted connection it came on, from 0


@dataclass
class Exchange:
    request: Received
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    keep_open: bool = True  # set False to close the connection after this answer


def http_answer(
    body: bytes, *, status: int = 200, headers: tuple[str, ...] = (), chunked: bool = False
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "content-type: application/json", *headers]
    if chunked:
        lines.append("transfer-encoding: chunked")
        # Odd-sized chunks, so that no chunk boundary falls where the JSON has one.
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + framed
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


CONVERSE_ANSWER = http_answer(json.dumps(ANSWER).encode())


async def answer_ok(exchange: Exchange) -> None:
    exchange.writer.write(CONVERSE_ANSWER)


@dataclass
class ScriptedServer:
    answer: Callable[[Exchange], Awaitable[None]] = answer_ok
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_client: int = 0
    port: int = 0
    tls: ssl.SSLContext | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _answering: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        # Hang up rather than cancel: Python 3.11's start_server callback logs a
        # cancelled handler task as an error.
        for writer in list(self._writers):
            writer.transport.abort()
        for answering in list(self._answering):
            answering.cancel()
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 5)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        number = self.accepted
        self.accepted += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
                method, target, _ = request_line.split(" ")
                headers = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(method, target, headers, body, number)
                self.received.append(received)
                exchange = Exchange(received, reader, writer)
                # In a task of its own, so that closing the server can stop an answer
                # that sleeps without cancelling the connection's handler.
                answering = asyncio.ensure_future(self.answer(exchange))
                self._answering.add(answering)
                try:
                    await answering
                except asyncio.CancelledError:
                    return
                finally:
                    self._answering.discard(answering)
                await writer.drain()
                if not exchange.keep_open:
                    return
        except ConnectionError:
            return
        finally:
            self.open_now -= 1
            self._tasks.discard(task)
            self._writers.discard(writer)
            with contextlib.suppress(ConnectionError):
                writer.close()


def client_for(server: ScriptedServer, **config: Any) -> AioBedrockClient:
    return AioBedrockClient(
        BedrockConfig(region="us-east-1", endpoint_url=server.url, **config),
        credentials=_Credentials(),
    )


class _Credentials:
    access_key = "AKIDEXAMPLE"
    secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
