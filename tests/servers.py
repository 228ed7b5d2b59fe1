"""Serve an ASGI app with uvicorn on a free loopback port, in a thread of its own.

Full-path tests need real HTTP between real clients (the `openai` SDK, aiobotocore) and our
apps. Each server gets its own thread and event loop, so a test may use blocking clients
from the main thread without stalling the server. Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn

from gateway.server.protocol import PROTOCOL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """A running uvicorn server; `url` is its base URL, `stop()` shuts it down gracefully."""

    def __init__(
        self,
        app: Any,
        *,
        lifespan: Literal["auto", "on", "off"] = "on",
        startup_timeout_s: float = 20,
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            lifespan=lifespan,
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http=PROTOCOL,  # as `serve` runs the gateway (a deadline for request headers)
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = startup_timeout_s
        step = 0.01
        while not self.server.started and self._thread.is_alive() and deadline > 0:
            threading.Event().wait(step)
            deadline -= step
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"server did not start: {self._error!r}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self.server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by __init__ / stop
            self._error = exc
        finally:
            loop.close()

    def stop(self, timeout_s: float = 20) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)
        with contextlib.suppress(OSError):
            self._sock.close()


@contextlib.contextmanager
def serve(app: Any, *, lifespan: Literal["auto", "on", "off"] = "on") -> Iterator[ServerThread]:
    server = ServerThread(app, lifespan=lifespan)
    try:
        yield server
    finally:
        server.stop()
