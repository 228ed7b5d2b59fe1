"""A small HTTP/1.1 load client on raw asyncio streams, for what wrk cannot measure.

wrk drives the non-streaming throughput runs. This client covers the rest:

* `stream_load`: N keep-alive connections each sending streaming requests back to back for
  a fixed time; counts finished streams and times, per stream, the first body chunk that
  carries content (an OpenAI delta with non-empty `content`, or a Bedrock
  `contentBlockDelta` frame);
* `interleaved_latency`: one request at a time, taking the targets in turn (the gateway,
  the pass-through, the emulator called directly) so that all see the same machine state;
  the difference of their percentiles is the latency the gateway adds.

It parses only what it needs (status line, `content-length` or chunked framing) so that its
own CPU cost stays small; every result carries that cost (`client_cpu_us_per_request`), so
a report can show that the client was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "BEDROCK_CONTENT",
    "OPENAI_CONTENT",
    "RESPONSES_CONTENT",
    "LatencyResult",
    "StreamResult",
    "Target",
    "interleaved_latency",
    "percentile",
    "stream_load",
]

# The first streamed bytes that carry model text.
OPENAI_CONTENT = re.compile(rb'"content":"[^"]')
BEDROCK_CONTENT = re.compile(rb"contentBlockDelta")
RESPONSES_CONTENT = re.compile(rb'"type":"response.output_text.delta"')


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def request_bytes(self) -> bytes:
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(self.body)}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class HTTPError(Exception):
    pass


class _Connection:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.request = target.request_bytes()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.target.host, self.target.port
            )
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, content: re.Pattern[bytes] | None = None) -> tuple[int, float, int]:
        """Send the request, read the whole answer: (status, seconds to content, body bytes).

        Seconds to content is measured from just before the request is written to the first
        body chunk matching `content` (to the end of the headers when `content` is None).
        """
        reader, writer = await self._open()
        started = time.perf_counter()
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        first: float | None = None if content is not None else time.perf_counter() - started
        size = 0
        if b"transfer-encoding: chunked" in lower:
            while True:
                line = await reader.readuntil(b"\r\n")
                length = int(line.split(b";", 1)[0], 16)
                if length == 0:
                    await reader.readuntil(b"\r\n")  # no trailers are sent
                    break
                data = await reader.readexactly(length + 2)
                size += length
                if first is None and content is not None and content.search(data):
                    first = time.perf_counter() - started
        else:
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
            if match is None:
                raise HTTPError("answer without content-length or chunked framing")
            length = int(match.group(1))
            data = await reader.readexactly(length)
            size = length
            if first is None and content is not None and content.search(data):
                first = time.perf_counter() - started
        if b"connection: close" in lower:
            self.close()
        if status != 200:
            raise HTTPError(f"status {status}: {data[:300]!r}")
        if first is None:
            raise HTTPError("the answer carried no content")
        return status, first, size


@dataclass
class StreamResult:
    streams: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_content_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    first_error: str | None = None

    @property
    def per_second(self) -> float:
        return self.streams / self.seconds if self.seconds else 0.0

    @property
    def client_cpu_us_per_request(self) -> float:
        done = self.streams + self.errors
        return self.client_cpu_s / done * 1e6 if done else float("nan")


async def stream_load(
    target: Target, *, concurrency: int, duration_s: float, content: re.Pattern[bytes]
) -> StreamResult:
    """`concurrency` connections sending streaming requests back to back for `duration_s`."""
    result = StreamResult()
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        connection = _Connection(target)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    _, first, _ = await connection.exchange(content)
                except (OSError, asyncio.IncompleteReadError, HTTPError, ValueError) as exc:
                    result.errors += 1
                    result.first_error = result.first_error or repr(exc)
                    connection.close()
                    await asyncio.sleep(0.01)
                    continue
                result.streams += 1
                result.first_content_s.append(first)
                result.total_s.append(time.perf_counter() - started)
        finally:
            connection.close()

    cpu = time.process_time()
    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - wall
    result.client_cpu_s = time.process_time() - cpu
    return result


@dataclass
class LatencyResult:
    samples_s: list[list[float]] = field(default_factory=list)  # one list per target
    errors: int = 0
    client_cpu_s: float = 0.0
    first_error: str | None = None

    @property
    def client_cpu_us_per_request(self) -> float:
        done = sum(len(s) for s in self.samples_s)
        return self.client_cpu_s / done * 1e6 if done else float("nan")


async def interleaved_latency(
    targets: Sequence[Target], *, duration_s: float, max_rounds: int, warmup: int = 50
) -> LatencyResult:
    """One request at a time, each target in turn, until `duration_s` or `max_rounds`.

    Alternating makes every target see the same machine state (frequency, cache, other
    processes), so the differences of their percentiles are fair.
    """
    result = LatencyResult(samples_s=[[] for _ in targets])
    connections = [_Connection(target) for target in targets]
    try:
        for _ in range(warmup):
            for connection in connections:
                await connection.exchange(None)
        cpu = time.process_time()
        deadline = time.perf_counter() + duration_s
        rounds = 0
        while time.perf_counter() < deadline and rounds < max_rounds:
            rounds += 1
            for connection, samples in zip(connections, result.samples_s, strict=True):
                started = time.perf_counter()
                try:
                    await connection.exchange(None)
                except (OSError, asyncio.IncompleteReadError, HTTPError, ValueError) as exc:
                    result.errors += 1
                    result.first_error = result.first_error or repr(exc)
                    connection.close()
                    continue
                samples.append(time.perf_counter() - started)
        result.client_cpu_s = time.process_time() - cpu
    finally:
        for connection in connections:
            connection.close()
    return result
