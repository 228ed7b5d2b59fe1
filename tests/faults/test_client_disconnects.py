"""Five hundred clients that hang up at random points, fifty at a time.

The clients speak raw HTTP/1.1 over sockets, so that a hang-up can land anywhere: right
after the request was sent (before the gateway has read the body or called Bedrock), in
the middle of the response headers, in the middle of an SSE event, after the last byte.
Half of them close politely (FIN), half reset the connection (RST).

Whatever the point, the gateway must release what the request took (the upstream stream
above all), keep serving, and write one usage record per request: Bedrock's own numbers
when it read them, an estimate marked `estimated` and `client_disconnected` otherwise.

Most answers are short, so that five hundred fit in seconds. One in twenty is slow (the
emulator would still be sending half a minute later): a hang-up there that the gateway
did not pass on to Bedrock leaves a connection open that the leak check sees.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass

from tests.faults.conftest import API_KEY, Launch, by_request, chat, metric
from tests.fullpath.conftest import RunningGateway, ledger

Recovery = Callable[[RunningGateway], AbstractContextManager[None]]

CLIENTS = 500
CONCURRENCY = 50
WORDS = 20
CHUNKS = 5  # the reply streams in five deltas (fewer events keep 500 streams quick)
# A streamed answer is about 1.5 kB on the wire; cuts are spread over it and a little past.
LONGEST_CUT = 2000
SLOW_EVERY = 20
SLOW_DELAY_MS = 3000  # between events: the first chunk after 3 s, the last after ~25 s


@dataclass(frozen=True)
class Plan:
    request_id: str
    stream: bool
    cut: int  # bytes of the response to read before hanging up; 0: right after sending,
    # -1: halfway through sending the body
    reset: bool  # RST instead of FIN
    input_tokens: int
    output_tokens: int
    slow: bool = False  # a stream that outlasts the leak check, cut in its first chunk

    def body(self) -> bytes:
        usage = {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens}
        reply = " ".join(f"w{i}" for i in range(WORDS))
        if self.stream:
            delay_ms = SLOW_DELAY_MS if self.slow else 15
            data = chat(stream=True, reply=reply, chunks=CHUNKS, delay_ms=delay_ms, usage=usage)
        else:  # a non-streamed answer arrives whole after the pause
            data = chat(reply=reply, first_token_delay_ms=60, usage=usage)
        return json.dumps(data).encode()


def plans(seed: int) -> list[Plan]:
    rng = random.Random(seed)
    made = []
    for index in range(CLIENTS):
        if index % SLOW_EVERY == 0:
            made.append(
                Plan(
                    request_id=f"fault-{index}",
                    stream=True,
                    cut=rng.randint(1, 300),
                    reset=rng.random() < 0.5,
                    input_tokens=100 + index,
                    output_tokens=1 + index % 11,
                    slow=True,
                )
            )
            continue
        draw = rng.random()
        cut = -1 if draw < 0.1 else 0 if draw < 0.25 else rng.randint(1, LONGEST_CUT)
        made.append(
            Plan(
                request_id=f"fault-{index}",
                stream=rng.random() < 0.8,
                cut=cut,
                # A reset right after sending may destroy the request before the gateway
                # read it (then there is nothing to record); once the answer has begun,
                # the request is certainly in.
                reset=cut > 0 and rng.random() < 0.5,
                input_tokens=100 + index,
                output_tokens=1 + index % 11,
            )
        )
    return made


async def _hang_up(port: int, plan: Plan) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = plan.body()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        "host: 127.0.0.1\r\n"
        f"authorization: Bearer {API_KEY}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {plan.request_id}\r\n"
        # A cut past the end of the answer then meets the end of the connection, instead
        # of waiting for the gateway's keep-alive timeout.
        "connection: close\r\n"
        "\r\n"
    )
    if plan.cut < 0:
        # The headers promised the whole body: the gateway is left waiting for the rest.
        writer.write(head.encode() + body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.05)
    else:
        writer.write(head.encode() + body)
        await writer.drain()
    received = 0
    while received < plan.cut:
        data = await reader.read(plan.cut - received)
        if not data:
            break
        received += len(data)
    if plan.reset:
        writer.transport.abort()
    else:
        writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


async def _crowd(port: int, all_plans: list[Plan]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(plan: Plan) -> None:
        async with semaphore:
            await asyncio.wait_for(_hang_up(port, plan), 30)

    await asyncio.wait_for(asyncio.gather(*(one(plan) for plan in all_plans)), 120)


def test_clients_hanging_up_anywhere(launch: Launch, recovery: Recovery) -> None:
    gateway = launch()
    all_plans = plans(seed=20261121)
    with recovery(gateway):
        asyncio.run(_crowd(gateway.server.port, all_plans))
    # A client that left is nobody's bug: nothing was counted as a gateway failure.
    assert metric(gateway, "gateway_requests_total", status="500") == 0

    rows = by_request(ledger(gateway))
    assert sorted(rows) == sorted(plan.request_id for plan in all_plans)
    for plan in all_plans:
        row = rows[plan.request_id]
        exact = (row["input_tokens"], row["output_tokens"]) == (
            plan.input_tokens,
            plan.output_tokens,
        )
        if plan.cut < 0:
            # Gone before the gateway had the whole request: Bedrock was never called, and
            # there was nobody to answer (499: nginx's "client closed request").
            assert (row["status"], row["stream"]) == (499, 0)  # the body was never parsed
            assert (row["error_type"], row["input_tokens"], row["estimated"]) == (
                "client_disconnected",
                0,
                0,
            )
        elif plan.slow:
            # Cut in the first of chunks seconds apart: Bedrock cannot have finished.
            assert (row["status"], row["estimated"]) == (200, 1), (plan, row)
            assert row["error_type"] == "client_disconnected"
        elif row["estimated"] and plan.stream:
            # The stream was dropped before Bedrock's usage event: an estimate, flagged.
            assert (row["status"], row["stream"]) == (200, 1)
            assert row["error_type"] == "client_disconnected"
            assert row["input_tokens"] >= 1
        elif row["estimated"]:
            # A non-streaming client left while Bedrock was answering: the call was
            # cancelled at once (no answer is waited for that nobody reads), flagged.
            assert (row["status"], row["stream"]) == (499, 0), (plan, row)
            assert row["error_type"] == "client_disconnected"
            assert row["input_tokens"] >= 1
        else:
            # Bedrock's own numbers reached the gateway, whether or not the client saw them.
            assert (row["status"], row["stream"]) == (200, plan.stream) and exact, (plan, row)
    # Most streams were cut while Bedrock was still sending; otherwise this test would
    # not be exercising what it claims to.
    flagged = sum(1 for row in rows.values() if row["estimated"])
    assert flagged >= CLIENTS * 0.3, flagged
