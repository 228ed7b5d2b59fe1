"""The gateway's performance benchmark: one command, one table.

    python -m tests.benchmarks.run                  # full run, about 3 minutes
    python -m tests.benchmarks.run --quick          # smoke run, about 20 seconds
    python -m tests.benchmarks.run --workers 1      # skip the 2-worker figures
    python -m tests.benchmarks.run --profile /tmp/prof   # also py-spy profiles (1 worker)

Needs `wrk` on the PATH (Debian: `apt-get install wrk`) and, for `--profile`, `py-spy` in
the virtualenv. Everything listens on 127.0.0.1 and every load run stops by itself after
`--duration` seconds.

What it does, in order, all in one run so that every ratio compares like with like:

1. starts the built-in Bedrock emulator (uvicorn, uvloop + httptools, its own process) and
   measures it alone with wrk (Converse, 64 connections): it must be far faster than the
   gateway (a warning is printed under 10,000 req/s), and it is the "direct" baseline;
2. starts the minimal pass-through (`tests/benchmarks/passthrough.py`: one starlette route,
   the gateway's own long-lived aiobotocore client, no auth/usage/metrics/translation) and
   measures it the same way;
3. for 1 (and 2) workers, starts the real gateway (`python -m gateway serve --config ...
   --workers N`) with one API key, a SQLite usage store, metrics on and `logging.level:
   warning`, then measures: non-streaming chat completions with wrk at 64 connections;
   streaming (50 content chunks, 16 concurrent, then one at a time) with
   `tests/benchmarks/client.py`, timing the first content chunk; the latency it adds at 1
   concurrent request (gateway, pass-through and direct emulator calls take turns, same
   conversation); and its memory under a mixed load for `--rss-duration` seconds (VmRSS
   sampled every second; peak = VmHWM);
4. checks that usage and metrics were really on: `/metrics` counts the requests and the
   SQLite ledger holds one row per answered request after shutdown;
5. prints the table: metric, target, measured, pass/fail, ratio to the baselines.

Every run also reports the CPU time each server used per request (from /proc), which is
steadier than req/s on a shared machine, and flags runs where other programs or the
hypervisor took CPU ("BUSY MACHINE"). AWS credentials are dummies (`test` / `test`); the
emulator accepts any signature.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.benchmarks.agent import agent_request, converse_body
from tests.benchmarks.client import (
    BEDROCK_CONTENT,
    OPENAI_CONTENT,
    RESPONSES_CONTENT,
    LatencyResult,
    StreamResult,
    Target,
    interleaved_latency,
    percentile,
    stream_load,
)

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WRK_SCRIPT = HERE / "wrk" / "post.lua"
MODEL_NAME = "bench-model"
MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
API_KEY = "bgw-benchmark-key-0123456789"
PROMPT = "Hello! Please tell me, in a few words, how the weather is today in Paris."
STREAM_REPLY = " ".join(f"word{i:02d}" for i in range(100))  # 699 characters, 50 slices
EMULATOR_MIN_RPS = 10_000
AGENT_KB = 80
T = TypeVar("T")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    duration: float
    workers: tuple[int, ...]
    connections: int
    stream_concurrency: int
    chunks: int
    rss_duration: float
    latency_rounds: int
    wrk_threads: int
    warmup: float
    profile_dir: Path | None
    keep: bool
    quick: bool


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run",
        description="Gateway throughput, streaming, latency and memory benchmark.",
    )
    parser.add_argument("--duration", type=float, help="seconds per load run (default 10)")
    parser.add_argument(
        "--workers", default=None, help="gateway worker counts, comma separated (default 1,2)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds each")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--stream-concurrency", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=50, help="content chunks per stream")
    parser.add_argument("--rss-duration", type=float, help="seconds of the memory run (default 60)")
    parser.add_argument(
        "--latency-rounds", type=int, default=5000, help="most requests per target at 1 conc."
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after the measured runs, record py-spy profiles of the 1-worker gateway in DIR",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    duration = args.duration if args.duration is not None else (1.0 if quick else 10.0)
    rss = args.rss_duration if args.rss_duration is not None else (3.0 if quick else 60.0)
    workers_text = args.workers if args.workers is not None else ("1" if quick else "1,2")
    workers = tuple(int(w) for w in workers_text.split(",") if w.strip())
    if not workers or min(workers) < 1:
        parser.error("--workers needs positive counts, e.g. 1 or 1,2")
    return Settings(
        duration=duration,
        workers=workers,
        connections=args.connections,
        stream_concurrency=args.stream_concurrency,
        chunks=args.chunks,
        rss_duration=rss,
        latency_rounds=args.latency_rounds,
        wrk_threads=args.wrk_threads,
        warmup=0.5 if quick else 2.0,
        profile_dir=args.profile,
        keep=bool(args.keep),
        quick=quick,
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(workdir: Path) -> dict[str, str]:
    """The environment of every server: dummy AWS credentials, nothing of the caller's AWS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("PROMETHEUS_MULTIPROC_DIR", "GATEWAY_CONFIG")
    }
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
        PYTHONPATH=str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    )
    return env


class Server:
    """A server process we started: its own session, its log in the work dir."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, check: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                if check():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself, or its spawned workers."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid != self.pid:
                    continue
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                continue
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                children.append(int(entry.name))
        return sorted(children) or [self.pid]

    def stop(self, timeout_s: float = 30) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)  # the group of the process we started
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def http_request(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def loaded_modules(pid: int) -> dict[str, str]:
    """Which event loop and HTTP parser a server process really uses, from its mappings."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {"loop": "?", "http": "?"}
    return {
        "loop": "uvloop" if "uvloop/loop." in maps else "asyncio",
        "http": "httptools" if "httptools/parser/parser." in maps else "h11",
    }


# --------------------------------------------------------------------------- CPU and memory


class RssSampler:
    """VmRSS / VmHWM of a server's worker processes, once a second, in a thread."""

    def __init__(self, server: Server, interval_s: float = 1.0) -> None:
        self.server = server
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, pid, VmRSS kB)
        self.peak_kb: dict[int, int] = {}  # pid -> VmHWM kB (last read)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        now = time.monotonic()
        for pid in self.server.worker_pids():
            fields = _proc_status(pid)
            if "VmRSS" in fields:
                self.samples.append((now, pid, fields["VmRSS"]))
            if "VmHWM" in fields:
                self.peak_kb[pid] = fields["VmHWM"]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def window_mean_mb(self, start: float, end: float) -> float:
        """Mean RSS per worker over the window, in MB."""
        per_tick: dict[float, list[int]] = {}
        for t, _, rss in self.samples:
            if start <= t <= end:
                per_tick.setdefault(t, []).append(rss)
        if not per_tick:
            return float("nan")
        return sum(sum(v) / len(v) for v in per_tick.values()) / len(per_tick) / 1024


def _proc_status(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return fields


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICK


@contextlib.contextmanager
def cpu_meter(servers: dict[str, Server]) -> Iterator[dict[str, float]]:
    """CPU seconds each server used inside the block (filled in on exit).

    Also `other`: CPU that neither these servers, nor this process, nor the load generators
    it ran (wrk) used, that is other programs on the machine, and `steal`: time the
    hypervisor gave to other guests. Either above a few tenths of a core makes the run's
    throughput figures low.
    """
    pids = {name: server.worker_pids() for name, server in servers.items()}
    before = {(name, pid): cpu_seconds([pid]) for name, p in pids.items() for pid in p}
    machine = _machine_cpu()
    own = time.process_time()
    children = _children_cpu()
    used: dict[str, float] = {}
    yield used
    for name, p in pids.items():
        each = [cpu_seconds([pid]) - before[(name, pid)] for pid in p]
        used[name] = sum(each)
        if len(each) > 1:  # how evenly the workers shared the load
            for number, seconds in enumerate(each):
                used[f"{name}#{number}"] = seconds
    busy, steal = (after - start for after, start in zip(_machine_cpu(), machine, strict=True))
    ours = sum(used[name] for name in pids)
    ours += time.process_time() - own + _children_cpu() - children
    used["other"] = max(0.0, busy - ours)
    used["steal"] = steal


def _machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _TICK, steal / _TICK


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- load runs


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    raw: dict[str, Any]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_command(settings: Settings, url: str, duration: float, connections: int) -> list[str]:
    return [
        "wrk",
        "-t",
        str(max(1, min(settings.wrk_threads, connections))),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]


def wrk_env(body_file: Path, authorization: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["WRK_BODY_FILE"] = str(body_file)
    env["WRK_AUTHORIZATION"] = authorization or ""
    return env


def parse_wrk(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            errors = sum(
                data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors")
            )
            return WrkResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                errors=errors + data["timeouts"],
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                raw=data,
            )
    raise RuntimeError(f"wrk printed no summary:\n{output}")


def run_wrk(
    settings: Settings,
    url: str,
    body_file: Path,
    *,
    authorization: str | None,
    duration: float,
    connections: int | None = None,
) -> WrkResult:
    connections = connections or settings.connections
    done = subprocess.run(
        wrk_command(settings, url, duration, connections),
        env=wrk_env(body_file, authorization),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


async def run_wrk_async(
    settings: Settings,
    url: str,
    body_file: Path,
    *,
    authorization: str | None,
    duration: float,
    connections: int,
) -> WrkResult:
    process = await asyncio.create_subprocess_exec(
        *wrk_command(settings, url, duration, connections),
        env=wrk_env(body_file, authorization),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), duration + 60)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr.decode()}")
    return parse_wrk(stdout.decode())


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run the client on uvloop when it is installed (it is a gateway dependency)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --------------------------------------------------------------------------- the set-up


@dataclass
class Bodies:
    chat: Path
    chat_stream: Path
    converse: Path
    converse_stream: Path
    agent: Path  # an agent-sized chat request (tests/benchmarks/agent.py)
    agent_converse: Path  # the Converse body the gateway makes of it
    responses: Path
    responses_stream: Path

    @classmethod
    def write(cls, workdir: Path, chunks: int) -> Bodies:
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
            # The same two requests on the Responses API. `store: false`, as Codex sends it:
            # the row compares the surfaces, not the stored-response write.
            "responses": {
                "model": MODEL_NAME,
                "input": PROMPT,
                "max_output_tokens": 256,
                "store": False,
            },
            "responses_stream": {
                "model": MODEL_NAME,
                "input": stream_text,
                "max_output_tokens": 256,
                "store": False,
                "stream": True,
            },
            # What the gateway sends Bedrock for the chat requests above.
            "converse": {
                "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
                "inferenceConfig": {"maxTokens": 256},
            },
            "converse_stream": {
                "messages": [{"role": "user", "content": [{"text": stream_text}]}],
                "inferenceConfig": {"maxTokens": 256},
            },
            "agent": agent_request(MODEL_NAME),
            "agent_converse": converse_body(MODEL_NAME, MODEL_ID),
        }
        paths = {}
        for name, body in bodies.items():
            path = workdir / f"{name}.json"
            path.write_text(json.dumps(body, separators=(",", ":")))
            paths[name] = path
        return cls(**paths)


def gateway_config(workdir: Path, port: int, emulator_url: str, tag: str) -> Path:
    """A config with everything on: one key, SQLite usage, metrics, warning-level logs."""
    config = {
        "server": {"host": HOST, "port": port, "graceful_shutdown_s": 1},
        "bedrock": {
            "region": "us-east-1",
            "endpoint_url": emulator_url,
        },
        "models": [
            {
                "name": MODEL_NAME,
                "bedrock_id": MODEL_ID,
                "pricing": {"input_per_1k": "0.003", "output_per_1k": "0.015"},
            }
        ],
        "auth": {
            "keys": [
                {
                    "id": "bench",
                    "key_sha256": hashlib.sha256(API_KEY.encode()).hexdigest(),
                    "team": "bench-team",
                    "user": "bench-user",
                }
            ]
        },
        "usage": {
            "store": f"sqlite:///{workdir / f'usage-{tag}.db'}",
            "spill_path": str(workdir / f"usage-{tag}.spill.jsonl"),
        },
        "metrics": {"enabled": True, "path": "/metrics"},
        "logging": {"level": "warning", "format": "json"},
    }
    path = workdir / f"gateway-{tag}.json"  # JSON is YAML
    path.write_text(json.dumps(config, indent=2))
    return path


def start_emulator(workdir: Path, env: dict[str, str]) -> tuple[Server, int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.emulator:create_emulator_app",
        "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    server = Server("emulator", argv, env, workdir)
    url = f"http://{HOST}:{port}/model/{MODEL_ID}/converse"
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    server.wait_ready(lambda: http_request(url, body, {"Authorization": "Bearer ready"})[0] == 200)
    return server, port


def start_passthrough(workdir: Path, env: dict[str, str], emulator_url: str) -> tuple[Server, int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "tests.benchmarks.passthrough", "--port", str(port),
        "--endpoint-url", emulator_url,
    ]  # fmt: skip
    server = Server("passthrough", argv, env, workdir)
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    server.wait_ready(lambda: http_request(f"http://{HOST}:{port}/passthrough", body)[0] == 200)
    return server, port


def start_gateway(
    workdir: Path,
    env: dict[str, str],
    emulator_url: str,
    workers: int,
) -> tuple[Server, int, Path]:
    port = free_port()
    tag = f"{workers}w"
    config = gateway_config(workdir, port, emulator_url, tag)
    env = dict(env)
    if workers > 1:
        metrics_dir = workdir / f"metrics-{tag}"
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    argv = [
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        "--workers", str(workers), "--host", HOST, "--port", str(port),
    ]  # fmt: skip
    server = Server(f"gateway-{tag}", argv, env, workdir)
    server.wait_ready(lambda: http_request(f"http://{HOST}:{port}/readyz")[0] == 200)
    if workers > 1:  # every worker up, not just the first to answer
        deadline = time.monotonic() + 60
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    return server, port, workdir / f"usage-{tag}.db"


def check_gateway_answers(port: int, bodies: Bodies) -> None:
    """One request of each kind, so a broken set-up fails here and not as a pile of errors."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    url = f"http://{HOST}:{port}/v1/chat/completions"
    status, body = http_request(url, bodies.chat.read_bytes(), auth)
    if status != 200 or b'"choices"' not in body:
        raise RuntimeError(f"gateway: non-streaming check failed: {status} {body[:500]!r}")
    status, body = http_request(url, bodies.chat_stream.read_bytes(), auth)
    if status != 200 or not body.rstrip().endswith(b"data: [DONE]"):
        raise RuntimeError(f"gateway: streaming check failed: {status} {body[:500]!r}")
    if not OPENAI_CONTENT.search(body):
        raise RuntimeError(f"gateway: the stream carried no content: {body[:500]!r}")


def metrics_count(port: int) -> float:
    """gateway_requests_total for the chat and Responses routes, summed over label sets."""
    status, body = http_request(f"http://{HOST}:{port}/metrics")
    if status != 200:
        return float("nan")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("gateway_requests_total{") and (
            '"/v1/chat/completions"' in line or '"/v1/responses"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def usage_rows(db: Path) -> int:
    if not db.exists():
        return -1
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM usage_records").fetchone()[0])


# --------------------------------------------------------------------------- measurements


@dataclass
class GatewayRun:
    workers: int
    loop: dict[str, str] = field(default_factory=dict)
    nonstream: WrkResult | None = None
    agent: WrkResult | None = None  # agent-sized requests, non-streaming
    stream: StreamResult | None = None
    stream_single: StreamResult | None = None  # one stream at a time: TTFC without queueing
    latency: LatencyResult | None = None  # gateway, pass-through, direct
    nonstream_cpu: dict[str, float] = field(default_factory=dict)
    agent_cpu: dict[str, float] = field(default_factory=dict)
    stream_cpu: dict[str, float] = field(default_factory=dict)
    # The Responses API, right after chat in the same run (1 worker only).
    responses_nonstream: WrkResult | None = None
    responses_stream: StreamResult | None = None
    responses_nonstream_cpu: dict[str, float] = field(default_factory=dict)
    responses_stream_cpu: dict[str, float] = field(default_factory=dict)
    # Gateway / pass-through ratios from short alternating rounds (1 worker only), per load.
    paired: dict[str, list[float]] = field(default_factory=dict)
    rss_first_mb: float = float("nan")
    rss_last_mb: float = float("nan")
    rss_window_s: float = 0.0
    peak_rss_mb: dict[int, float] = field(default_factory=dict)
    metrics_requests: float = float("nan")
    usage_rows: int = -1
    answered: int = 0


@dataclass
class Results:
    emulator: WrkResult | None = None
    emulator_stream: StreamResult | None = None
    passthrough: WrkResult | None = None
    passthrough_agent: WrkResult | None = None  # the agent request's Converse body
    passthrough_stream: StreamResult | None = None
    emulator_cpu: dict[str, float] = field(default_factory=dict)
    passthrough_cpu: dict[str, float] = field(default_factory=dict)
    passthrough_agent_cpu: dict[str, float] = field(default_factory=dict)
    gateways: dict[int, GatewayRun] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def gateway_target(port: int, body: Path, path: str = "/v1/chat/completions") -> Target:
    return Target(
        HOST,
        port,
        path,
        body.read_bytes(),
        (("Authorization", f"Bearer {API_KEY}"),),
    )


def emulator_target(port: int, body: Path, operation: str) -> Target:
    return Target(
        HOST,
        port,
        f"/model/{MODEL_ID}/{operation}",
        body.read_bytes(),
        (("Authorization", "Bearer direct"),),
    )


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def measure_gateway(
    settings: Settings,
    workdir: Path,
    env: dict[str, str],
    emulator: Server,
    emulator_port: int,
    passthrough_port: int,
    bodies: Bodies,
    workers: int,
    results: Results,
) -> GatewayRun:
    run = GatewayRun(workers)
    server, port, db = start_gateway(workdir, env, f"http://{HOST}:{emulator_port}", workers)
    gateway_url = f"http://{HOST}:{port}/v1/chat/completions"
    auth = f"Bearer {API_KEY}"
    meter = {"gateway": server, "emulator": emulator}
    try:
        run.loop = loaded_modules(server.worker_pids()[0])
        with RssSampler(server) as sampler:
            check_gateway_answers(port, bodies)
            say(f"gateway {workers}w: warm-up {settings.warmup:.0f} s")
            warm = run_wrk(
                settings, gateway_url, bodies.chat, authorization=auth, duration=settings.warmup
            )
            run.answered += warm.requests
            say(f"gateway {workers}w: non-streaming, {settings.connections} connections")
            with cpu_meter(meter) as run.nonstream_cpu:
                run.nonstream = run_wrk(
                    settings,
                    gateway_url,
                    bodies.chat,
                    authorization=auth,
                    duration=settings.duration,
                )
            run.answered += run.nonstream.requests
            say(f"gateway {workers}w: {run.nonstream.rps:,.0f} req/s")
            say(f"gateway {workers}w: agent-sized requests, {settings.connections} connections")
            with cpu_meter(meter) as run.agent_cpu:
                run.agent = run_wrk(
                    settings,
                    gateway_url,
                    bodies.agent,
                    authorization=auth,
                    duration=settings.duration,
                )
            run.answered += run.agent.requests
            say(f"gateway {workers}w: {run.agent.rps:,.0f} agent req/s")

            say(f"gateway {workers}w: streaming, {settings.stream_concurrency} concurrent")
            with cpu_meter(meter) as run.stream_cpu:
                run.stream = run_async(
                    stream_load(
                        gateway_target(port, bodies.chat_stream),
                        concurrency=settings.stream_concurrency,
                        duration_s=settings.duration,
                        content=OPENAI_CONTENT,
                    )
                )
            run.answered += run.stream.streams
            say(f"gateway {workers}w: {run.stream.per_second:,.0f} streams/s")

            if workers == 1:
                _measure_responses(settings, run, meter, port, bodies, auth)
                _paired_rounds(settings, run, port, passthrough_port, bodies, auth)
                say("gateway 1w: streaming, 1 at a time")
                run.stream_single = run_async(
                    stream_load(
                        gateway_target(port, bodies.chat_stream),
                        concurrency=1,
                        duration_s=min(settings.duration, 5.0),
                        content=OPENAI_CONTENT,
                    )
                )
                run.answered += run.stream_single.streams
                say("gateway 1w: latency at 1 concurrent request (gateway, pass-through, direct)")
                warmup = 20 if settings.quick else 100
                run.latency = run_async(
                    interleaved_latency(
                        [
                            gateway_target(port, bodies.chat),
                            Target(
                                HOST, passthrough_port, "/passthrough", bodies.converse.read_bytes()
                            ),
                            emulator_target(emulator_port, bodies.converse, "converse"),
                        ],
                        duration_s=settings.duration,
                        max_rounds=settings.latency_rounds,
                        warmup=warmup,
                    )
                )
                run.answered += len(run.latency.samples_s[0]) + warmup

            rss_duration = settings.rss_duration if workers == 1 else settings.duration
            say(f"gateway {workers}w: memory run, {rss_duration:.0f} s of mixed load")
            start = time.monotonic()
            mixed_wrk, mixed_stream = run_async(
                _mixed_load(settings, gateway_url, port, bodies, auth, rss_duration)
            )
            end = time.monotonic()
            run.answered += mixed_wrk.requests + mixed_stream.streams
            window = min(10.0, rss_duration / 3)
            run.rss_window_s = window
            run.rss_first_mb = sampler.window_mean_mb(start, start + window)
            run.rss_last_mb = sampler.window_mean_mb(end - window, end)
            if mixed_wrk.errors or mixed_stream.errors:
                results.notes.append(
                    f"{workers}w memory run: {mixed_wrk.errors} wrk errors, "
                    f"{mixed_stream.errors} stream errors ({mixed_stream.first_error})"
                )
            sampler.sample()
            run.peak_rss_mb = {pid: kb / 1024 for pid, kb in sampler.peak_kb.items()}
        time.sleep(0.5)
        run.metrics_requests = metrics_count(port)
        if settings.profile_dir is not None and workers == 1:
            profile_gateway(settings, server, port, gateway_url, bodies, auth, results)
    finally:
        code = server.stop()
        if code not in (0, None):
            results.notes.append(f"gateway {workers}w exited with {code}: {server.log_tail(5)}")
    run.usage_rows = usage_rows(db)
    errors_in_log = [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()
        if '"level":"error"' in line or "Traceback" in line
    ]
    if errors_in_log:
        results.notes.append(
            f"gateway {workers}w log has {len(errors_in_log)} error lines, "
            f"first: {errors_in_log[0][:300]}"
        )
    return run


# The pause after each load of an alternating round (see `_paired_rounds`).
SETTLE_S = 1.0


def _paired_rounds(
    settings: Settings,
    run: GatewayRun,
    port: int,
    passthrough_port: int,
    bodies: Bodies,
    auth: str,
) -> None:
    """Gateway and pass-through in short alternating rounds, for the three ratio targets.

    The main rows measure the pass-through first and the gateway minutes later. On a
    shared machine whose speed drifts (this project's swung 20% between runs a minute
    apart) that compares two moments as much as two programs. Here each round runs both
    back to back, in alternating order, so drift hits both sides alike; the row reports
    every round's ratio and their median. Each load is followed by a pause in which
    deferred work (the gateway's usage writes, every 200 ms) finishes, so that neither
    side's round pays for the other's.
    """
    rounds = 1 if settings.quick else 3
    seconds = max(1.0, settings.duration / 3)
    gateway_url = f"http://{HOST}:{port}/v1/chat/completions"
    pt_url = f"http://{HOST}:{passthrough_port}/passthrough"

    def wrk(url: str, body: Path, authorization: str | None) -> float:
        result = run_wrk(settings, url, body, authorization=authorization, duration=seconds)
        time.sleep(SETTLE_S)
        if url == gateway_url:
            run.answered += result.requests
        return result.rps

    def streams(target: Target, content: re.Pattern[bytes]) -> float:
        result = run_async(
            stream_load(
                target,
                concurrency=settings.stream_concurrency,
                duration_s=seconds,
                content=content,
            )
        )
        time.sleep(SETTLE_S)
        if target.port == port:
            run.answered += result.streams
        return result.per_second

    loads: dict[str, tuple[Callable[[], float], Callable[[], float]]] = {
        "non-streaming": (
            lambda: wrk(gateway_url, bodies.chat, auth),
            lambda: wrk(pt_url, bodies.converse, None),
        ),
        "agent-sized": (
            lambda: wrk(gateway_url, bodies.agent, auth),
            lambda: wrk(pt_url, bodies.agent_converse, None),
        ),
        "streams": (
            lambda: streams(gateway_target(port, bodies.chat_stream), OPENAI_CONTENT),
            lambda: streams(
                Target(HOST, passthrough_port, "/passthrough-stream",
                       bodies.converse_stream.read_bytes()),
                BEDROCK_CONTENT,
            ),
        ),
    }  # fmt: skip
    for name, (gateway_load, passthrough_load) in loads.items():
        say(f"gateway 1w: {name}, {rounds} alternating rounds with the pass-through")
        ratios = []
        for i in range(rounds):
            if i % 2 == 0:
                gateway_rate, passthrough_rate = gateway_load(), passthrough_load()
            else:
                passthrough_rate = passthrough_load()
                gateway_rate = gateway_load()
            ratios.append(gateway_rate / passthrough_rate if passthrough_rate else 0.0)
        run.paired[name] = ratios


def _measure_responses(
    settings: Settings,
    run: GatewayRun,
    meter: dict[str, Server],
    port: int,
    bodies: Bodies,
    auth: str,
) -> None:
    """The Responses API under the same loads as chat, right after it, for the cost rows."""
    url = f"http://{HOST}:{port}/v1/responses"
    status, body = http_request(url, bodies.responses.read_bytes(), {"Authorization": auth})
    if status != 200 or b'"output_text"' not in body:
        raise RuntimeError(f"gateway: /v1/responses check failed: {status} {body[:500]!r}")
    say("gateway 1w: Responses API, non-streaming")
    with cpu_meter(meter) as run.responses_nonstream_cpu:
        run.responses_nonstream = run_wrk(
            settings, url, bodies.responses, authorization=auth, duration=settings.duration
        )
    run.answered += run.responses_nonstream.requests
    say(f"gateway 1w: Responses API, streaming, {settings.stream_concurrency} concurrent")
    with cpu_meter(meter) as run.responses_stream_cpu:
        run.responses_stream = run_async(
            stream_load(
                gateway_target(port, bodies.responses_stream, "/v1/responses"),
                concurrency=settings.stream_concurrency,
                duration_s=settings.duration,
                content=RESPONSES_CONTENT,
            )
        )
    run.answered += run.responses_stream.streams


async def _mixed_load(
    settings: Settings, url: str, port: int, bodies: Bodies, auth: str, duration: float
) -> tuple[WrkResult, StreamResult]:
    """Non-streaming (wrk) and streaming (our client) at the same time: both code paths."""
    wrk_task = asyncio.ensure_future(
        run_wrk_async(
            settings,
            url,
            bodies.chat,
            authorization=auth,
            duration=duration,
            connections=max(1, settings.connections // 2),
        )
    )
    streams = await stream_load(
        gateway_target(port, bodies.chat_stream),
        concurrency=max(1, settings.stream_concurrency // 2),
        duration_s=duration,
        content=OPENAI_CONTENT,
    )
    return await wrk_task, streams


def profile_gateway(
    settings: Settings,
    server: Server,
    port: int,
    gateway_url: str,
    bodies: Bodies,
    auth: str,
    results: Results,
) -> None:
    """py-spy over the 1-worker gateway under each load (not part of the measured figures).

    Loads: small chat completions, agent-sized ones (`agent.py`), streams. Two profiles
    per load: `<load>.txt` (`--native`, raw stacks: C time in uvloop,
    httptools, json, GC and OpenSSL shows as such; summarise it with `profile_summary`)
    and `<load>.svg` (a Python-only flame graph to browse).
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        results.notes.append("--profile: py-spy not found; pip install py-spy")
        return
    out = settings.profile_dir
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    seconds = max(2, round(settings.duration))

    def record(name: str, load: Callable[[], object]) -> None:
        for options, path in (
            (["--native", "--format", "raw"], out / f"{name}.txt"),
            (["--nonblocking", "--format", "flamegraph"], out / f"{name}.svg"),
        ):
            say(f"profile: {name} -> {path}")
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.pid), "--rate", "200",
                 "--duration", str(seconds + 1), *options, "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            time.sleep(0.5)
            load()
            try:
                spy.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()

    record(
        "nonstreaming",
        lambda: run_wrk(settings, gateway_url, bodies.chat, authorization=auth, duration=seconds),
    )
    record(
        "agent",
        lambda: run_wrk(settings, gateway_url, bodies.agent, authorization=auth, duration=seconds),
    )
    record(
        "streaming",
        lambda: run_async(
            stream_load(
                gateway_target(port, bodies.chat_stream),
                concurrency=settings.stream_concurrency,
                duration_s=seconds,
                content=OPENAI_CONTENT,
            )
        ),
    )
    results.notes.append(
        f"profiles in {out}; summary: python -m tests.benchmarks.profile_summary "
        f"{out}/nonstreaming.txt {out}/agent.txt {out}/streaming.txt"
    )


def run_all(settings: Settings) -> Results:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    results = Results()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    env = child_env(workdir)
    bodies = Bodies.write(workdir, settings.chunks)
    say(f"work dir {workdir}")
    servers: list[Server] = []
    try:
        emulator, emulator_port = start_emulator(workdir, env)
        servers.append(emulator)
        emulator_url = f"http://{HOST}:{emulator_port}"
        direct_url = f"{emulator_url}/model/{MODEL_ID}/converse"
        say("emulator alone: non-streaming Converse")
        run_wrk(settings, direct_url, bodies.converse, authorization="Bearer d", duration=1)
        with cpu_meter({"emulator": emulator}) as results.emulator_cpu:
            results.emulator = run_wrk(
                settings,
                direct_url,
                bodies.converse,
                authorization="Bearer direct",
                duration=settings.duration,
            )
        say(f"emulator alone: {results.emulator.rps:,.0f} req/s")
        if results.emulator.rps < EMULATOR_MIN_RPS:
            results.notes.append(
                f"WARNING: the emulator alone did {results.emulator.rps:,.0f} req/s, under "
                f"{EMULATOR_MIN_RPS:,}: it may limit the gateway figures"
            )
        say("emulator alone: ConverseStream")
        results.emulator_stream = run_async(
            stream_load(
                emulator_target(emulator_port, bodies.converse_stream, "converse-stream"),
                concurrency=settings.stream_concurrency,
                duration_s=settings.duration,
                content=BEDROCK_CONTENT,
            )
        )

        passthrough, pt_port = start_passthrough(workdir, env, emulator_url)
        servers.append(passthrough)
        pt_url = f"http://{HOST}:{pt_port}/passthrough"
        say("pass-through: warm-up and non-streaming")
        run_wrk(settings, pt_url, bodies.converse, authorization=None, duration=settings.warmup)
        with cpu_meter({"passthrough": passthrough, "emulator": emulator}) as cpu:
            results.passthrough = run_wrk(
                settings, pt_url, bodies.converse, authorization=None, duration=settings.duration
            )
        results.passthrough_cpu = cpu
        say(f"pass-through: {results.passthrough.rps:,.0f} req/s")
        say("pass-through: agent-sized Converse bodies")
        meter = {"passthrough": passthrough, "emulator": emulator}
        with cpu_meter(meter) as results.passthrough_agent_cpu:
            results.passthrough_agent = run_wrk(
                settings,
                pt_url,
                bodies.agent_converse,
                authorization=None,
                duration=settings.duration,
            )
        say(f"pass-through: {results.passthrough_agent.rps:,.0f} agent req/s")
        say(f"pass-through: streaming, {settings.stream_concurrency} concurrent")
        results.passthrough_stream = run_async(
            stream_load(
                Target(HOST, pt_port, "/passthrough-stream", bodies.converse_stream.read_bytes()),
                concurrency=settings.stream_concurrency,
                duration_s=settings.duration,
                content=BEDROCK_CONTENT,
            )
        )
        say(f"pass-through: {results.passthrough_stream.per_second:,.0f} streams/s")

        for workers in settings.workers:
            results.gateways[workers] = measure_gateway(
                settings,
                workdir,
                env,
                emulator,
                emulator_port,
                pt_port,
                bodies,
                workers,
                results,
            )
    finally:
        for server in reversed(servers):
            server.stop()
        if settings.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


# --------------------------------------------------------------------------- the table


@dataclass
class Row:
    metric: str
    target: str
    measured: str
    verdict: str
    ratio: str = ""


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _cpu_row(
    label: str, cpu: dict[str, float], count: int, seconds: float, reference_us: float | None
) -> Row:
    """Server CPU per request and how busy each server was (cores), to tell CPU-bound runs."""
    used = cpu.get("gateway", 0.0)
    per = used / max(count, 1) * 1e6
    busy = f"{used / seconds:.2f} cores" if seconds else "?"
    split = [v for k, v in sorted(cpu.items()) if k.startswith("gateway#")]
    if split and seconds:
        busy += " = " + " + ".join(f"{v / seconds:.2f}" for v in split)
    emulator = cpu.get("emulator", 0.0) / seconds if seconds else 0.0
    ratio = f"{per / reference_us:.2f}x pass-through" if reference_us else ""
    if seconds and cpu.get("other", 0.0) + cpu.get("steal", 0.0) > 0.15 * seconds:
        ratio = (ratio + "; " if ratio else "") + (
            f"BUSY MACHINE: other programs {cpu['other'] / seconds:.2f} cores, "
            f"steal {cpu.get('steal', 0.0) / seconds:.2f}"
        )
    return Row(label, "info", f"{per:,.0f} us ({busy}; emulator {emulator:.2f} cores)", "-", ratio)


def _per(cpu: dict[str, float], count: int) -> float:
    return cpu.get("gateway", 0.0) / max(count, 1) * 1e6


# The target of each load measured in alternating rounds (gateway / pass-through).
PAIRED_TARGETS = {"non-streaming": 0.85, "agent-sized": 0.85, "streams": 1.0}


def _paired_rows(run: GatewayRun) -> list[Row]:
    rows = []
    for name, ratios in run.paired.items():
        if not ratios:
            continue
        target = PAIRED_TARGETS[name]
        median = statistics.median(ratios)
        rows.append(Row(
            f"gateway 1w / pass-through, {name}, alternating rounds",
            f">= {target:.2f}x (median)",
            f"{median:.2f}x  (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
            _verdict(median >= target),
            "both sides back to back in each round",
        ))  # fmt: skip
    return rows


def _responses_rows(run: GatewayRun) -> list[Row]:
    """The Responses API's cost against chat's in the same run: within 10% (issue 16)."""
    ns, st = run.responses_nonstream, run.responses_stream
    if ns is None or st is None or run.nonstream is None or run.stream is None:
        return []
    rows = []
    for label, cpu, count, chat_cpu, chat_count, errors in (
        ("non-streaming", run.responses_nonstream_cpu, ns.requests, run.nonstream_cpu,
         run.nonstream.requests, ns.errors),
        ("streaming", run.responses_stream_cpu, st.streams, run.stream_cpu, run.stream.streams,
         st.errors),
    ):  # fmt: skip
        mine, chat = _per(cpu, count), _per(chat_cpu, chat_count)
        ratio = mine / chat if chat else float("nan")
        rows.append(Row(
            f"gateway 1w: Responses API CPU per {'request' if label == 'non-streaming' else 'stream'} ({label})",
            "<= 1.10x chat",
            f"{mine:,.0f} us ({errors} err)",
            _verdict(ratio <= 1.10 and errors == 0),
            f"{ratio:.2f}x chat ({chat:,.0f} us)",
        ))  # fmt: skip
    return rows


def build_rows(settings: Settings, results: Results) -> list[Row]:
    rows: list[Row] = []
    emu = results.emulator
    pt = results.passthrough
    emu_stream = results.emulator_stream
    assert emu is not None and pt is not None and emu_stream is not None
    rows.append(Row(
        f"emulator alone, Converse req/s ({settings.connections} conn)",
        f">= {EMULATOR_MIN_RPS:,} (sanity)",
        f"{emu.rps:,.0f}  (p50 {emu.p50_ms:.1f} ms, p99 {emu.p99_ms:.1f} ms, {emu.errors} err)",
        "ok" if emu.rps >= EMULATOR_MIN_RPS else "WARN",
        "baseline",
    ))  # fmt: skip
    rows.append(Row(
        f"pass-through req/s ({settings.connections} conn)",
        "reference",
        f"{pt.rps:,.0f}  (p50 {pt.p50_ms:.1f} ms, p99 {pt.p99_ms:.1f} ms, {pt.errors} err)",
        "-",
        f"{pt.rps / emu.rps:.2f}x emulator",
    ))  # fmt: skip
    pt_cpu = results.passthrough_cpu
    pt_cpu_us = pt_cpu.get("passthrough", 0) / max(pt.requests, 1) * 1e6
    rows.append(_cpu_row("pass-through: CPU per request",
                         {**pt_cpu, "gateway": pt_cpu.get("passthrough", 0)},
                         pt.requests, pt.seconds, None))  # fmt: skip
    targets_rps = {1: 900, 2: 1600}
    for workers, run in results.gateways.items():
        w = f"{workers}w"
        ns = run.nonstream
        assert ns is not None
        target = targets_rps.get(workers)
        rows.append(Row(
            f"gateway {w}: non-streaming req/s ({settings.connections} conn)",
            f">= {target:,}" if target else "-",
            f"{ns.rps:,.0f}  (p50 {ns.p50_ms:.1f} ms, p99 {ns.p99_ms:.1f} ms)",
            _verdict(ns.rps >= target if target else None),
            f"{ns.rps / pt.rps:.2f}x pass-through, {ns.rps / emu.rps:.2f}x emulator",
        ))  # fmt: skip
        rows.append(Row(
            f"gateway {w}: non-streaming errors", "0", f"{ns.errors} of {ns.requests:,}",
            _verdict(ns.errors == 0),
        ))  # fmt: skip
        rows.append(_cpu_row(f"gateway {w}: CPU per request (non-streaming)", run.nonstream_cpu,
                             ns.requests, ns.seconds, pt_cpu_us))  # fmt: skip
        if workers == 1:
            rows.append(Row(
                "gateway 1w / pass-through req/s", ">= 75%", f"{ns.rps / pt.rps:.0%}",
                _verdict(ns.rps / pt.rps >= 0.75),
            ))  # fmt: skip
        agent, pt_agent = run.agent, results.passthrough_agent
        if agent is not None and pt_agent is not None and pt_agent.rps:
            # The pass-through sends the very Converse body the gateway made of the request:
            # what is left is the gateway's own cost of size (parse, validate, translate).
            rows.append(Row(
                f"gateway {w}: agent-sized req/s (~{AGENT_KB} KB, {settings.connections} conn)",
                ">= 0.85x pass-through" if workers == 1 else "-",
                f"{agent.rps:,.0f}  (p50 {agent.p50_ms:.1f} ms, {agent.errors} err; "
                f"pass-through {pt_agent.rps:,.0f})",
                _verdict(agent.rps >= 0.85 * pt_agent.rps and agent.errors == 0)
                if workers == 1 else "-",
                f"{agent.rps / pt_agent.rps:.2f}x pass-through (same Converse body)",
            ))  # fmt: skip
            pt_agent_cpu = results.passthrough_agent_cpu
            pt_agent_us = pt_agent_cpu.get("passthrough", 0) / max(pt_agent.requests, 1) * 1e6
            rows.append(_cpu_row(f"gateway {w}: CPU per agent-sized request", run.agent_cpu,
                                 agent.requests, agent.seconds, pt_agent_us))  # fmt: skip
        st = run.stream
        assert st is not None
        is_target = workers == 1
        rows.append(Row(
            f"gateway {w}: streams/s ({settings.chunks} chunks, "
            f"{settings.stream_concurrency} conc)",
            ">= 300" if is_target else "-",
            f"{st.per_second:,.0f}  ({st.errors} err)",
            _verdict(st.per_second >= 300 if is_target else None),
            f"{st.per_second / emu_stream.per_second:.2f}x emulator "
            f"({emu_stream.per_second:,.0f}/s)",
        ))  # fmt: skip
        pt_stream = results.passthrough_stream
        if pt_stream is not None and pt_stream.per_second:
            rows.append(Row(
                f"gateway {w}: streams/s vs pass-through streams/s",
                ">= 1.0x" if is_target else "-",
                f"{st.per_second:,.0f} vs {pt_stream.per_second:,.0f} "
                f"({pt_stream.errors} pass-through err)",
                _verdict(st.per_second >= pt_stream.per_second if is_target else None),
                f"{st.per_second / pt_stream.per_second:.2f}x pass-through",
            ))  # fmt: skip
        ttfc50 = percentile(st.first_content_s, 50)
        ttfc99 = percentile(st.first_content_s, 99)
        emu50 = percentile(emu_stream.first_content_s, 50)
        rows.append(Row(
            f"gateway {w}: first content chunk p50 / p99",
            "p50 <= 5 ms" if is_target else "-",
            f"{_ms(ttfc50)} / {_ms(ttfc99)}",
            _verdict(ttfc50 <= 0.005 if is_target else None),
            f"emulator p50 {_ms(emu50)}",
        ))  # fmt: skip
        if run.stream_single is not None:
            single = run.stream_single
            rows.append(Row(
                f"gateway {w}: first content chunk p50 / p99, 1 stream at a time", "info",
                f"{_ms(percentile(single.first_content_s, 50))} / "
                f"{_ms(percentile(single.first_content_s, 99))}", "-",
                f"whole stream p50 {_ms(percentile(single.total_s, 50))}",
            ))  # fmt: skip
        rows.append(_cpu_row(f"gateway {w}: CPU per stream", run.stream_cpu, st.streams,
                             st.seconds, None))  # fmt: skip
        rows.extend(_responses_rows(run))
        rows.extend(_paired_rows(run))
        if run.latency is not None:
            lat = run.latency
            (gw50, pt50, d50), (gw99, pt99, d99) = (
                [percentile(samples, p) for samples in lat.samples_s] for p in (50, 99)
            )
            rows.append(Row(
                "added latency p50 @1 conc (gateway - direct)", "<= 1.2 ms",
                _ms(gw50 - d50), _verdict(gw50 - d50 <= 0.0012),
                f"gw {_ms(gw50)}, direct {_ms(d50)}; pass-through adds {_ms(pt50 - d50)}"
                f" (n={len(lat.samples_s[0])})",
            ))  # fmt: skip
            # Issue 15's form of the target: what the gateway adds on top of what the
            # pass-through adds, both measured in the same interleaved run.
            rows.append(Row(
                "added latency p50 @1 conc (gateway - pass-through)", "<= +0.5 ms",
                f"{(gw50 - pt50) * 1000:+.2f} ms", _verdict(gw50 - pt50 <= 0.0005),
                f"gw {_ms(gw50)}, pass-through {_ms(pt50)}",
            ))  # fmt: skip
            rows.append(Row(
                "added latency p99 @1 conc (gateway - direct)", "<= 3 ms",
                _ms(gw99 - d99), _verdict(gw99 - d99 <= 0.003),
                f"gw {_ms(gw99)}, direct {_ms(d99)}; pass-through adds {_ms(pt99 - d99)}"
                f" ({lat.errors} err)",
            ))  # fmt: skip
        peak = max(run.peak_rss_mb.values()) if run.peak_rss_mb else float("nan")
        rows.append(Row(
            f"gateway {w}: peak RSS per worker (VmHWM)", "<= 120 MB",
            " / ".join(f"{v:.0f}" for v in run.peak_rss_mb.values()) + " MB",
            _verdict(peak <= 120),
        ))  # fmt: skip
        growth = run.rss_last_mb - run.rss_first_mb
        flat = growth <= max(2.0, 0.05 * run.rss_first_mb)
        rows.append(Row(
            f"gateway {w}: RSS last {run.rss_window_s:.0f} s vs first "
            f"{run.rss_window_s:.0f} s (mixed load)",
            "flat (<= +5%)",
            f"{run.rss_first_mb:.1f} -> {run.rss_last_mb:.1f} MB ({growth:+.1f})",
            _verdict(flat) if workers == 1 else "-",
        ))  # fmt: skip
        usage_ok = run.usage_rows >= run.answered > 0
        rows.append(Row(
            f"gateway {w}: usage rows / metrics count vs answered",
            "on, >= answered",
            f"{run.usage_rows:,} rows, {run.metrics_requests:,.0f} counted, "
            f"{run.answered:,} answered",
            _verdict(usage_ok and run.metrics_requests >= run.answered),
            f"loop={run.loop.get('loop')} http={run.loop.get('http')}",
        ))  # fmt: skip
    one = results.gateways.get(min(results.gateways)) if results.gateways else None
    if one and one.stream and one.latency:
        rows.append(Row(
            "load client CPU per request (stream / 1-conc)", "small",
            f"{one.stream.client_cpu_us_per_request:.0f} us / "
            f"{one.latency.client_cpu_us_per_request:.0f} us", "-",
            f"stream client used {one.stream.client_cpu_s / one.stream.seconds:.0%} of a core",
        ))  # fmt: skip
    return rows


def print_table(rows: list[Row]) -> None:
    names = list(Row.__annotations__)
    headers = Row("metric", "target", "measured", "result", "vs baseline / pass-through")
    widths = [max(len(getattr(r, f)) for r in [headers, *rows]) for f in names]

    def line(row: Row) -> str:
        cells = [getattr(row, f).ljust(w) for f, w in zip(names, widths, strict=True)]
        return " | ".join(cells).rstrip()

    print(line(headers))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def describe_machine() -> str:
    import uvicorn

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, uvicorn {uvicorn.__version__}, "
        f"{wrk.stdout.split(' [')[0]}"
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.monotonic()
    results = run_all(settings)
    rows = build_rows(settings, results)
    print()
    print(
        f"# bedrock-gateway benchmark ({'quick' if settings.quick else 'full'}), "
        f"{describe_machine()}, "
        f"{settings.duration:.0f} s per run, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print_table(rows)
    for note in results.notes:
        print(f"note: {note}")
    failed = [r for r in rows if r.verdict == "FAIL"]
    print(f"\n{len(failed)} target(s) missed" if failed else "\nall targets met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
