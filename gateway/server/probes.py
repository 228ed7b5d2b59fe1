"""Probes and metrics: `/healthz` (the process answers), `/readyz` (it should get traffic)."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.pipeline.runtime import Gateway
from gateway.server.bodies import json_response

__all__ = ["healthz", "metrics", "readyz"]

logger = logging.getLogger("gateway")

_READY_PING_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the config is loaded, we are not shutting down and the usage store answers."""
    gateway: Gateway = request.app.state.gateway
    if not gateway.ready:
        return json_response({"status": "shutting down"}, status=503)
    try:
        await asyncio.wait_for(gateway.recorder.store.ping(), _READY_PING_TIMEOUT_S)
    except Exception as exc:
        logger.warning("readiness: usage store unreachable: %s", type(exc).__name__)
        return json_response({"status": "usage store unreachable"}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
