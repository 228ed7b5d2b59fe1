"""Slow clients cannot hold the gateway: deadlines for headers, body and reading answers.

Each test uses a raw socket on loopback, as a slowloris client would, against the real
uvicorn server with the gateway's protocol (`gateway.server.protocol`).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from tests.harness import API_KEY, OTHER_KEY, GatewayFactory, RunningGateway, ledger, script

TIMEOUTS = {"header_timeout_s": 0.3, "body_timeout_s": 0.3, "write_timeout_s": 0.5}


def until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def connect(gateway: RunningGateway, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", gateway.server.port))
    sock.settimeout(5)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed `sock` (reads until EOF), failing past `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    while True:
        data = sock.recv(65536)
        if not data:
            return time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a `content-length`: its head and body can come in two
    segments (uvicorn writes them one after the other), so one `recv` may miss the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    length = int(lengths[0].split(b":")[1]) if lengths else 0
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def test_a_client_that_stalls_in_its_headers_is_dropped(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(server=TIMEOUTS)
    with connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-")
        assert closed_within(sock, 3) < 2


def test_a_kept_alive_connection_that_stalls_in_its_next_headers_is_dropped(
    start_gateway: GatewayFactory,
) -> None:
    # The deadline starts again with each request on a connection, once part of its
    # headers has arrived (uvicorn's own keep-alive timer stops at the first byte).
    gateway = start_gateway(server=TIMEOUTS)
    body = json.dumps({"model": "nova-micro", "messages": [{"role": "user", "content": "hi"}]})
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {API_KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body.encode()
    )
    with connect(gateway) as sock:
        for _ in range(2):  # whole requests in one write each: no deadline is hit
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.4)  # longer than the header deadline, between requests
        sock.sendall(request[:40])
        assert closed_within(sock, 3) < 2


def test_a_connection_that_sends_nothing_is_dropped(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(server=TIMEOUTS)
    with connect(gateway) as sock:
        assert closed_within(sock, 3) < 2


def test_headers_in_time_are_not_cut_off(start_gateway: GatewayFactory) -> None:
    """The deadline is for the headers only: a request slower than it in total is fine."""
    gateway = start_gateway(server={**TIMEOUTS, "body_timeout_s": 5})
    body = json.dumps({"model": "nova-micro", "messages": [{"role": "user", "content": "hi"}]})
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {API_KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        )
        time.sleep(0.6)  # past the header deadline, within the body's
        sock.sendall(body.encode())
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_stalled_body_is_408_and_holds_no_slot_others_need(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={**TIMEOUTS, "max_concurrent_requests": 1})
    with connect(gateway) as stalled:
        stalled.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {API_KEY}\r\ncontent-length: 1000\r\n\r\n".encode()
            + b'{"model": "nova'
        )
        # While that body is outstanding, another key's request is served, not 503.
        other = gateway.client(OTHER_KEY).chat.completions.create(
            model="nova-micro", messages=[{"role": "user", "content": "hi"}]
        )
        assert other.choices[0].message.content
        answer = read_response(stalled)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"request_timeout" in answer
    statuses = sorted((row["key_id"], row["status"]) for row in ledger(gateway))
    assert statuses == [("app1", 408), ("app2", 200)]


def test_a_stream_nobody_reads_is_dropped_after_the_write_timeout(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server=TIMEOUTS)
    # More than every socket buffer between us can hold (a few MB on loopback).
    reply = "word " * 1_500_000
    body = json.dumps(
        {
            "model": "nova-micro",
            "stream": True,
            "messages": [{"role": "user", "content": script(reply=reply, chunks=2000)}],
        }
    ).encode()
    with connect(gateway, rcvbuf=4096) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {API_KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # Read nothing: the gateway gives up on us and releases the request (and Bedrock's
        # stream) soon after the write timeout.
        state = gateway.app.state.gateway
        assert until(lambda: state.inflight_billable == 1)  # admitted, streaming
        started = time.monotonic()
        assert until(lambda: state.inflight_billable == 0)  # given up on us
        assert time.monotonic() - started < 5
    (row,) = ledger(gateway)
    assert row["status"] == 200 and row["stream"] == 1
    assert row["error_type"] == "client_write_timeout"
