"""The Messages row: `/v1/messages` (Claude via InvokeModel) against `/v1/chat/completions`
(the same Claude model via Converse), in one run on one gateway, so the two share the
machine's state.

    python -m tests.benchmarks.messages_row [--duration 10] [--rounds 2] [--quick]

For each route: non-streaming with wrk, and 50-chunk streams with the stream client;
each measured `--rounds` times, the routes taking turns, and reported as the gateway's
CPU per request and per stream (what a request costs the gateway, independent of how
busy the machine is) plus throughput. The Messages route must cost within 10% of the chat
route's (the issue's bar): the exit status is 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks.client import OPENAI_CONTENT, Target, stream_load
from tests.benchmarks.run import (
    API_KEY,
    HOST,
    MODEL_NAME,
    PROMPT,
    STREAM_REPLY,
    Settings,
    child_env,
    cpu_meter,
    parse_args,
    run_async,
    run_wrk,
    say,
    start_emulator,
    start_gateway,
)

# The first streamed bytes that carry model text in an Anthropic stream.
ANTHROPIC_CONTENT = re.compile(rb'"text_delta","text":"[^"]')
BOUND = 1.10


@dataclass
class RouteCost:
    requests: int = 0
    request_cpu_s: float = 0.0
    request_s: float = 0.0
    streams: int = 0
    stream_cpu_s: float = 0.0
    stream_s: float = 0.0
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def us_per_request(self) -> float:
        return self.request_cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def us_per_stream(self) -> float:
        return self.stream_cpu_s / self.streams * 1e6 if self.streams else float("nan")


def _bodies(workdir: Path, chunks: int) -> dict[str, Path]:
    directive = json.dumps({"reply": STREAM_REPLY, "chunks": chunks})
    stream_text = f"{PROMPT}\n@emulator {directive}"
    bodies = {
        "chat": {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 256,
        },
        "chat_stream": {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": stream_text}],
            "max_tokens": 256,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        "messages": {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 256,
        },
        "messages_stream": {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": stream_text}],
            "max_tokens": 256,
            "stream": True,
        },
    }
    paths = {}
    for name, body in bodies.items():
        paths[name] = workdir / f"{name}.json"
        paths[name].write_text(json.dumps(body, separators=(",", ":")))
    return paths


def _target(port: int, path: str, body: Path) -> Target:
    return Target(HOST, port, path, body.read_bytes(), (("Authorization", f"Bearer {API_KEY}"),))


def measure(settings: Settings, rounds: int) -> dict[str, RouteCost]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-messages-"))
    env = child_env(workdir)
    emulator, emulator_port = start_emulator(workdir, env)
    costs = {"/v1/chat/completions": RouteCost(), "/v1/messages": RouteCost()}
    try:
        server, port, _ = start_gateway(workdir, env, f"http://{HOST}:{emulator_port}", 1)
        bodies = _bodies(workdir, settings.chunks)
        routes = {
            "/v1/chat/completions": (bodies["chat"], bodies["chat_stream"], OPENAI_CONTENT),
            "/v1/messages": (bodies["messages"], bodies["messages_stream"], ANTHROPIC_CONTENT),
        }
        auth = f"Bearer {API_KEY}"
        try:
            for path, (body, _, _) in routes.items():  # warm-up, both routes
                run_wrk(
                    settings,
                    f"http://{HOST}:{port}{path}",
                    body,
                    authorization=auth,
                    duration=settings.warmup,
                )
            for number in range(rounds):
                for path, (body, stream_body, content) in routes.items():
                    cost = costs[path]
                    say(f"round {number + 1}: {path} non-streaming")
                    with cpu_meter({"gateway": server}) as used:
                        wrk = run_wrk(
                            settings,
                            f"http://{HOST}:{port}{path}",
                            body,
                            authorization=auth,
                            duration=settings.duration,
                        )
                    cost.requests += wrk.requests
                    cost.request_cpu_s += used["gateway"]
                    cost.request_s += wrk.seconds
                    cost.errors += wrk.errors
                    say(f"round {number + 1}: {path} streaming")
                    with cpu_meter({"gateway": server}) as used:
                        streams = run_async(
                            stream_load(
                                _target(port, path, stream_body),
                                concurrency=settings.stream_concurrency,
                                duration_s=settings.duration,
                                content=content,
                            )
                        )
                    cost.streams += streams.streams
                    cost.stream_cpu_s += used["gateway"]
                    cost.stream_s += streams.seconds
                    cost.errors += streams.errors
        finally:
            server.stop()
    finally:
        emulator.stop()
        if not settings.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return costs


def report(costs: dict[str, RouteCost]) -> bool:
    chat, messages = costs["/v1/chat/completions"], costs["/v1/messages"]
    print()
    print(
        "| route | non-stream CPU us/req | req/s | 50-chunk stream CPU us/stream | streams/s | errors |"
    )
    print("|---|---|---|---|---|---|")
    for path, cost in costs.items():
        rps = cost.requests / cost.request_s if cost.request_s else 0.0
        sps = cost.streams / cost.stream_s if cost.stream_s else 0.0
        print(
            f"| {path} | {cost.us_per_request:,.0f} | {rps:,.0f} | {cost.us_per_stream:,.0f} "
            f"| {sps:,.0f} | {cost.errors} |"
        )
    ratio_request = messages.us_per_request / chat.us_per_request
    ratio_stream = messages.us_per_stream / chat.us_per_stream
    print(
        f"\nMessages / chat CPU: non-stream {ratio_request:.2f}, stream {ratio_stream:.2f} (bound {BOUND})"
    )
    return ratio_request <= BOUND and ratio_stream <= BOUND and not (chat.errors or messages.errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.messages_row")
    parser.add_argument("--rounds", type=int, default=2)
    own, rest = parser.parse_known_args(argv)
    settings = parse_args(rest)
    started = time.monotonic()
    ok = report(measure(settings, own.rounds))
    say(f"done in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
