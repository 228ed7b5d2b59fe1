"""`serve --workers 2`: metrics and the ledger stay exact across worker processes.

Each worker counts in its own files under `PROMETHEUS_MULTIPROC_DIR`; whichever worker
answers a scrape must report the sum over all of them, starting from zero (files of an
earlier run are wiped at start), and a worker that crashes must neither take its counts
with it nor leave its in-flight requests counted for ever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import script
from tests.processes import GatewayProcess, GatewayProcessFactory, process_config, sha
from tests.servers import ServerThread

KEY = "sk-workers-test"
REQUESTS = 40
CLIENT_THREADS = 4
STALE_COUNT = 1000
CHAT = "/v1/chat/completions"


def metric_sums(url: str) -> dict[str, float]:
    """One scrape on a fresh connection: each sample name's total over its series."""
    with httpx.Client(timeout=10) as client:  # a new connection: any worker may answer
        text = client.get(url + "/metrics").text
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_inflight_requests":
                key = f"gateway_inflight_requests{{route={sample.labels['route']}}}"
            else:
                key = sample.name
            sums[key] = sums.get(key, 0) + sample.value
    return sums


def leave_stale_metrics(directory: Path) -> None:
    """What a previous run leaves behind: a worker's counter files, its process gone."""
    code = (
        "from gateway.metrics import Metrics\n"
        "m = Metrics()\n"
        f"m.requests.labels('{CHAT}', 'nova-micro', 'search', 'app1', '200').inc({STALE_COUNT})\n"
        "m.inflight.labels('/v1/chat/completions').inc()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert list(directory.glob("counter_*.db"))


def worker_pids(directory: Path) -> set[int]:
    """Workers that have counted a request: only they create a counter file."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}


def live_pids(directory: Path) -> set[int]:
    """Workers that are running: each creates its gauge file when its app starts."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("gauge_livesum_*.db")}


def parent_of(pid: int) -> int:
    """The parent pid, from /proc (Linux): field 4 of `stat`, after the command name."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets on local `port` in `state` ("0A" listening, "01"
    established), from /proc/net/tcp and tcp6 (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    inodes.add(int(fields[9]))
    return inodes


def owned_sockets(pid: int, inodes: set[int]) -> set[int]:
    """Which of `inodes` the process `pid` holds open."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                held.add(int(target[8:-1]))
    return held & inodes


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    """The operator's PROMETHEUS_MULTIPROC_DIR, in which the test can look at the files."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    return directory


def send_requests(url: str) -> None:
    """REQUESTS chat completions, each on a fresh connection, from a few threads."""

    def one(index: int) -> int:
        body = {
            "model": "nova-micro",
            "messages": [{"role": "user", "content": script(f"request {index}", delay_ms=5)}],
        }
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {KEY}"}) as client:
            return client.post(url + CHAT, json=body).status_code

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        statuses = list(pool.map(one, range(REQUESTS), timeout=120))
    assert statuses == [200] * REQUESTS


@pytest.mark.slow
def test_two_workers_report_exact_sums(
    tmp_path: Path,
    emulator: ServerThread,
    gateway_process: GatewayProcessFactory,
    metrics_dir: Path,
) -> None:
    leave_stale_metrics(metrics_dir)
    keys = [{"id": "app1", "key_sha256": sha(KEY), "team": "search"}]
    config = process_config(tmp_path, emulator.url, keys=keys)
    running: GatewayProcess = gateway_process(
        config, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    )

    send_requests(running.url)

    for _ in range(8):  # several scrapes on fresh connections: either worker may answer
        sums = metric_sums(running.url)
        assert sums["gateway_requests_total"] == REQUESTS  # not STALE_COUNT more
        assert sums["gateway_request_duration_seconds_count"] == REQUESTS
        assert sums[f"gateway_inflight_requests{{route={CHAT}}}"] == 0
    assert len(worker_pids(metrics_dir)) == 2, "not both workers served requests"

    # A worker killed mid-stream: uvicorn replaces it; its counts stay, its in-flight goes.
    stream_started = threading.Event()
    stream_broke = threading.Event()

    def slow_stream() -> None:
        body = {
            "model": "nova-micro",
            "stream": True,
            "messages": [{"role": "user", "content": script(reply="a b c d e f", delay_ms=500)}],
        }
        try:
            with httpx.stream(
                "POST",
                running.url + CHAT,
                json=body,
                headers={"authorization": f"Bearer {KEY}"},
                timeout=30,
            ) as response:
                for _ in response.iter_lines():
                    stream_started.set()
        except httpx.TransportError:
            stream_broke.set()

    client = threading.Thread(target=slow_stream)
    client.start()
    assert stream_started.wait(15)
    assert metric_sums(running.url)[f"gateway_inflight_requests{{route={CHAT}}}"] == 1
    before = live_pids(metrics_dir)
    assert {parent_of(pid) for pid in before} == {running.process.pid}
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    client.join(30)
    assert stream_broke.is_set()
    deadline = time.monotonic() + 30
    while len(live_pids(metrics_dir) - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(live_pids(metrics_dir) - before) == 2, running.output()
    running.wait_ready()

    sums = metric_sums(running.url)
    assert sums["gateway_requests_total"] == REQUESTS
    assert sums.get(f"gateway_inflight_requests{{route={CHAT}}}", 0) == 0
    assert not (live_pids(metrics_dir) & before), "the dead workers' live gauges were kept"

    assert running.stop() == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "usage.db")) as conn:
        (count, distinct) = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT id) FROM usage_records"
        ).fetchone()
    assert count == distinct == REQUESTS
    # The supervisor's lines and both workers' (uvicorn's included) are JSON too.
    lines = running.output().splitlines()
    assert len(running.records()) == len(lines), running.output()
    assert not [r for r in running.records() if r["level"] == "error"]


def test_serve_gives_several_workers_a_fresh_metrics_directory(
    tmp_path: Path, emulator: ServerThread, gateway_process: GatewayProcessFactory
) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, `serve` makes one (and removes it at exit)."""
    keys = [{"id": "app1", "key_sha256": sha(KEY), "team": "search"}]
    env = {"TMPDIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": ""}
    running = gateway_process(
        process_config(tmp_path, emulator.url, keys=keys), tmp_path, workers=2, env=env
    )
    (created,) = tmp_path.glob("gateway-metrics-*")
    for _ in range(6):
        response = httpx.post(
            running.url + CHAT,
            json={"model": "nova-micro", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {KEY}"},
            timeout=30,
        )
        assert response.status_code == 200
    for _ in range(4):
        assert metric_sums(running.url)["gateway_requests_total"] == 6
    assert running.stop() == 0
    assert not created.exists()


def test_each_worker_listens_itself_and_a_burst_of_connections_is_spread(
    tmp_path: Path,
    emulator: ServerThread,
    gateway_process: GatewayProcessFactory,
    metrics_dir: Path,
) -> None:
    """With one shared socket, the worker that woke first accepted every connection
    waiting: a client opening its pool at once (wrk, a warming connection pool) often
    landed all of it on one worker. Each worker has its own SO_REUSEPORT listener now,
    and the kernel spreads the connections before any worker runs."""
    keys = [{"id": "app1", "key_sha256": sha(KEY), "team": "search"}]
    config = process_config(tmp_path, emulator.url, keys=keys)
    running = gateway_process(
        config, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    )
    port = config["server"]["port"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # ready means one worker is; wait for both
        workers = live_pids(metrics_dir)
        listeners = tcp_sockets(port, "0A")
        owned = {pid: owned_sockets(pid, listeners) for pid in workers}
        if len(workers) == 2 and all(owned.values()):
            break
        time.sleep(0.05)
    assert all(len(held) == 1 for held in owned.values()), owned
    assert len(listeners) == 2 and set().union(*owned.values()) == listeners

    # 32 connections made while neither worker can run; then both go on.
    clients: list[socket.socket] = []
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(32):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            accepted = tcp_sockets(port, "01")
            share = {pid: len(owned_sockets(pid, accepted)) for pid in workers}
            if sum(share.values()) == 32:
                break
            time.sleep(0.05)
        assert sum(share.values()) == 32, share
        # 32 connections hashed over two listeners: fewer than 4 on either has a chance of
        # about 3 in a million.
        assert min(share.values()) >= 4, share
    finally:
        for client in clients:
            client.close()
    assert running.stop() == 0


def test_a_port_in_use_stops_serve_at_once_with_the_reason(
    tmp_path: Path, emulator: ServerThread
) -> None:
    keys = [{"id": "app1", "key_sha256": sha(KEY), "team": "search"}]
    config = process_config(tmp_path, emulator.url, keys=keys)
    with socket.create_server(("127.0.0.1", config["server"]["port"])):  # someone else's
        running = GatewayProcess.start(config, tmp_path, workers=2)
        try:
            assert running.process.wait(timeout=60) == 1
        finally:
            running.kill()
    (line,) = [r for r in running.records() if r["level"] == "error"]
    assert line["message"].startswith(f"cannot listen on 127.0.0.1:{config['server']['port']}")
    assert "Traceback" not in running.output()
