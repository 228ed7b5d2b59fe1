"""`create_app`: routes, middleware order and the lifespan that owns every long-lived client.

Nothing is created at import time. The lifespan opens one Bedrock client per region, the
usage store and its recorder, and closes them in reverse order on shutdown, after the
recorder has flushed. Tests inject a fake `bedrock`, a `store` and a fresh `registry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.bedrock import AioBedrockClient, BedrockClient, StaticCredentials
from gateway.config import GatewayConfig
from gateway.errors import GatewayError, NotFoundError
from gateway.http import json_response
from gateway.metrics import Metrics
from gateway.middleware import AuthMiddleware, RequestMiddleware
from gateway.routes.chat import chat_completions
from gateway.routes.embeddings import embeddings
from gateway.routes.health import healthz, metrics, readyz
from gateway.routes.models import get_model, list_models
from gateway.service import Gateway, Runtime
from gateway.usage.recorder import UsageRecorder
from gateway.usage.store import UsageStore, open_store

__all__ = ["create_app"]

logger = logging.getLogger("gateway")


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the OpenAI shape, like every other error."""
    assert isinstance(exc, HTTPException)
    error = GatewayError(exc.detail or "error")
    error.status = exc.status_code
    error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    if exc.status_code == 404:
        error = NotFoundError(f"Unknown route {request.method} {request.url.path}.")
    return json_response(error.to_openai(), status=error.status, headers=exc.headers)


def create_app(
    config: GatewayConfig,
    *,
    bedrock: BedrockClient | None = None,
    store: UsageStore | None = None,
    registry: CollectorRegistry | None = None,
    config_path: Path | None = None,
    credentials: StaticCredentials | None = None,
) -> Starlette:
    runtime = Runtime.build(config)
    metrics_ = Metrics(registry)
    public_paths = frozenset({"/healthz", "/readyz", config.metrics.path})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            client: BedrockClient
            if bedrock is None:
                client = await stack.enter_async_context(
                    AioBedrockClient(
                        config.bedrock,
                        regions=runtime.catalog.regions(),
                        credentials=credentials,
                    )
                )
            else:
                client = bedrock
            usage_store = store if store is not None else open_store(config.usage.store)
            await usage_store.open()
            stack.push_async_callback(usage_store.close)
            recorder = UsageRecorder(
                usage_store,
                flush_interval_ms=config.usage.flush_interval_ms,
                on_depth=metrics_.usage_queue_depth.set,
            )
            await recorder.start()
            stack.push_async_callback(recorder.aclose)
            gateway = Gateway(
                runtime,
                bedrock=client,
                recorder=recorder,
                metrics=metrics_,
                config_path=config_path,
            )
            app.state.gateway = gateway
            stack.callback(_install_sighup(gateway))
            try:
                yield
            finally:
                gateway.ready = False

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    if config.metrics.enabled:
        routes.append(Route(config.metrics.path, metrics, methods=["GET"]))

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMiddleware),
            Middleware(AuthMiddleware, public_paths=lambda: public_paths),
        ],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    return app


def _install_sighup(gateway: Gateway) -> Callable[[], None]:
    """Reload keys, models and prices on SIGHUP (only possible in the main thread)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: gateway.reload(dict(os.environ)))
    except (RuntimeError, ValueError, NotImplementedError):
        return lambda: None  # not the main thread (tests) or no signals on this platform

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


def app_from_environment() -> Starlette:
    """uvicorn factory for `serve` (each worker process calls it): config from the environment.

    `serve` puts the resolved config path in `GATEWAY_CONFIG`; an empty value means the
    embedded defaults.
    """
    from gateway.config import load_config
    from gateway.logs import configure_logging

    env = dict(os.environ)
    path_text = env.get("GATEWAY_CONFIG") or ""
    path = Path(path_text) if path_text else None
    config = load_config(path, env)
    configure_logging(config.logging)
    return create_app(config, config_path=path)
