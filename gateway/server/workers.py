"""`serve --workers N`: uvicorn's supervisor, with a listening socket per worker.

uvicorn binds one socket in the parent and every worker accepts from it. A worker that
wakes first accepts everything waiting, so a client that opens its connections at once
(a connection pool warming up, a load balancer, wrk) often landed all of them on one
worker while the other idled: in the benchmark, 2 workers gave 1.03 + 0.00 cores about
one run in two. Here each worker binds its own socket with `SO_REUSEPORT` and the kernel
spreads new connections across them.

The parent still binds the address first (without listening) so that a port in use
fails at once with a clear error, and so that the port stays ours while workers come
and go. The one cost of `SO_REUSEPORT`: connections still in a worker's accept queue
when that worker stops listening are reset, unless the host sets
`net.ipv4.tcp_migrate_req=1`. To keep that to shutdown and crashes, SIGHUP reloads the
config inside each worker (as a single process does) instead of replacing the workers.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import Any, TypeVar

import uvicorn
from uvicorn.supervisors import Multiprocess

__all__ = ["serve_workers"]

logger = logging.getLogger("uvicorn.error")

_S = TypeVar("_S", bound=socket.socket)


def serve_workers(config: uvicorn.Config) -> None:
    """Run `config.workers` processes until SIGTERM/SIGINT; see the module docstring."""
    try:
        holder = _PerWorkerListener.reserve(config.host, config.port)
    except OSError as exc:  # as uvicorn does for one worker: say it, no traceback
        logger.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
        sys.exit(1)
    host, port = holder.getsockname()[:2]
    logger.info("Listening on http://%s:%d with %d workers", host, port, config.workers)
    try:
        _Supervisor(config, sockets=[holder]).run()
    finally:
        holder.close()


class _PerWorkerListener(socket.socket):
    """The parent's hold on the address. Pickled into a worker, it becomes a new socket
    bound there with `SO_REUSEPORT`: a listener of the worker's own.

    uvicorn hands the parent's sockets to each worker by pickling them (multiprocessing
    would otherwise pass the same socket); this is the one place we change that.
    """

    @classmethod
    def reserve(cls, host: str, port: int) -> _PerWorkerListener:
        family, address = _resolve(host, port)
        return _bind_shared(cls(family, socket.SOCK_STREAM), address)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_worker_listener, (self.family, self.getsockname()))


def _worker_listener(family: socket.AddressFamily, address: tuple[Any, ...]) -> socket.socket:
    """Runs in the worker, while its arguments are unpickled."""
    return _bind_shared(socket.socket(family, socket.SOCK_STREAM), address)


def _bind_shared(sock: _S, address: tuple[Any, ...]) -> _S:
    """`sock` bound to `address` with SO_REUSEPORT (closed again if that fails)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, address


class _Supervisor(Multiprocess):
    def handle_hup(self) -> None:
        """Each worker re-reads the config itself: nothing restarts, nothing is reset."""
        logger.info("Received SIGHUP, passing it to the workers.")
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGHUP)
