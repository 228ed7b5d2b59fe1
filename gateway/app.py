"""`create_app`: routes, middleware order and the lifespan that owns every long-lived client.

Nothing is created at import time. The lifespan opens one Bedrock client per region, the
usage store and its recorder, and closes them in reverse order on shutdown, after the
recorder has flushed. Tests inject a fake `bedrock`, a `store` and a fresh `registry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from gateway.bedrock.client import AioBedrockClient, BedrockClient, StaticCredentials
from gateway.bedrock.discovery import Discovery
from gateway.config import CorsConfig, GatewayConfig
from gateway.errors import GatewayError, NotFoundError
from gateway.images.fetcher import ImageFetcher
from gateway.keys.admin import KeyAdmin
from gateway.keys.refresher import KeyRefresher
from gateway.keys.store import open_key_store
from gateway.limits import Limiter, open_counter_store
from gateway.metrics import Metrics
from gateway.pipeline.handler import SurfaceEndpoint
from gateway.pipeline.runtime import Gateway, Runtime
from gateway.pipeline.surface import Surface
from gateway.server.bodies import json_response
from gateway.server.dispatch import GatewayApp
from gateway.server.middleware import AuthMiddleware, RequestMiddleware
from gateway.server.probes import healthz, metrics, readyz
from gateway.server.protocol import HEADER_TIMEOUT_STATE
from gateway.surfaces.admin import admin_routes
from gateway.surfaces.anthropic_count_tokens import CountTokens
from gateway.surfaces.anthropic_messages import Messages
from gateway.surfaces.models import get_model, list_models
from gateway.surfaces.openai_chat import ChatCompletions
from gateway.surfaces.openai_embeddings import Embeddings
from gateway.surfaces.openai_responses import Responses
from gateway.surfaces.openai_responses_stored import responses_websocket
from gateway.surfaces.ui import UI_PUBLIC_PATHS, ui_routes
from gateway.surfaces.usage_report import usage_report
from gateway.usage.dead_letter import dead_letter_path
from gateway.usage.recorder import UsageRecorder
from gateway.usage.store import UsageStore, open_store

__all__ = ["create_app"]

logger = logging.getLogger("gateway")

# Between readiness failing on SIGTERM and uvicorn refusing new connections.
_DRAIN_WINDOW_S = 2.0
_GC_GEN0_THRESHOLD = 20_000
# Response headers a browser app may read: ids, the model used, what was dropped, limits.
_CORS_EXPOSED = [
    "x-request-id",
    "x-gateway-model",
    "x-gateway-dropped-params",
    "x-gateway-dropped-tools",
    "x-gateway-dropped-betas",
    "retry-after",
]
# Routes besides the surfaces' with a `route` label of their own in the in-flight gauge.
_LABELLED_ROUTES = ("/v1/models", "/v1/usage")


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
    tune_gc: bool = False,
) -> Starlette:
    runtime = Runtime.build(config)
    if not config.models and not config.allow_unlisted_models:
        # `models: []` in the file: every call will be a 404 (issue 19, item 17).
        logger.warning(
            "no models are configured (models: []) and allow_unlisted_models is false: "
            "every chat and embedding call will be refused with 404; remove `models:` to "
            "use the embedded catalogue"
        )
    metrics_ = Metrics(registry)
    responses = Responses()  # its stored responses open with the usage store, in the lifespan
    # The usage page and its assets load without a key; its data needs one.
    public_paths = frozenset({"/healthz", "/readyz", config.metrics.path, *UI_PUBLIC_PATHS})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            client: BedrockClient
            team_clients: dict[str, BedrockClient] = {}
            default_region = config.bedrock.region
            if bedrock is None:
                aio = await stack.enter_async_context(
                    AioBedrockClient(
                        config.bedrock,
                        regions=runtime.catalog.regions(),
                        credentials=credentials,
                        roles=config.auth.teams,
                    )
                )
                client = aio
                default_region = aio.default_region
                team_clients = {
                    team: aio.for_team(team)
                    for team, settings in config.auth.teams.items()
                    if settings.role_arn
                }
            else:
                client = bedrock
            usage_store = store if store is not None else open_store(config.usage.store)
            await usage_store.open()
            stack.push_async_callback(usage_store.close)
            # The Responses surface's stored responses and reasoning key live in this store.
            await responses.stored.start(usage_store)
            usage = config.usage
            spill_path = Path(usage.spill_path) if usage.spill_path else None
            recorder = UsageRecorder(
                usage_store,
                flush_interval_ms=usage.flush_interval_ms,
                batch_size=usage.batch_size,
                max_buffer=usage.max_buffer,
                spill_path=spill_path,
                on_depth=metrics_.usage_queue_depth.set,
                dead_letter_path=dead_letter_path(spill_path) if spill_path else None,
                on_dead_letter=metrics_.usage_dead_letters.inc,
                on_lag=metrics_.usage_lag.set,
            )
            await recorder.start()
            stack.push_async_callback(recorder.aclose)
            counters = open_counter_store(
                config.limits.store,
                prefix=config.limits.redis_prefix,
                timeout_s=config.limits.redis_timeout_s,
            )
            stack.push_async_callback(counters.aclose)

            def new_limiter(current: GatewayConfig) -> Limiter:
                return Limiter(
                    counters,
                    teams=current.auth.teams,
                    spend=usage_store,
                    fail_open=config.limits.fail_open,
                    spend_ttl_s=config.limits.spend_cache_s,
                    on_store_error=metrics_.limits_store_failed,
                )

            images = await stack.enter_async_context(ImageFetcher(config.images))
            gateway = Gateway(
                runtime,
                bedrock=client,
                recorder=recorder,
                metrics=metrics_,
                limiter=new_limiter(config),
                images=images,
                limiter_factory=new_limiter,
                config_path=config_path,
                team_clients=team_clients,
                default_region=default_region,
            )
            app.state.gateway = gateway
            if config.bedrock.discover.enabled:
                await _start_discovery(stack, gateway, client, runtime, config)
            # Keys and teams managed through the admin API or the CLI, in the same database.
            key_store = open_key_store(config.usage.store)
            await key_store.open()
            stack.push_async_callback(key_store.close)
            refresher = KeyRefresher(gateway, key_store, new_limiter=new_limiter)
            await refresher.start()
            stack.push_async_callback(refresher.aclose)
            app.state.key_refresher = refresher
            # The admin API's rules, bound to the config in force when a call arrives.
            app.state.key_admin = lambda: KeyAdmin(key_store, gateway.runtime.config)
            stack.callback(_install_sighup(gateway))
            stack.callback(_install_sigterm(gateway, config.server.graceful_shutdown_s))
            if tune_gc:
                _tune_gc()
            try:
                # uvicorn hands this state to each connection's protocol (header deadline).
                yield {HEADER_TIMEOUT_STATE: config.server.header_timeout_s}
            finally:
                gateway.ready = False

    surfaces: list[Surface] = [
        ChatCompletions(),
        Embeddings(),
        Messages(),
        CountTokens(),
        responses,
    ]
    direct = {surface.route: SurfaceEndpoint(surface) for surface in surfaces}
    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/usage", usage_report, methods=["GET"]),
        WebSocketRoute("/v1/responses", responses_websocket),
        Route("/v1/responses/{response_id}", responses.stored.get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.stored.delete_response, methods=["DELETE"]),
        Route(
            "/v1/responses/{response_id}/input_items",
            responses.stored.list_input_items,
            methods=["GET"],
        ),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *admin_routes(),
        *ui_routes(),
    ]
    if config.metrics.enabled:
        routes.append(Route(config.metrics.path, metrics, methods=["GET"]))

    app = GatewayApp(
        # The surfaces run their whole pipeline themselves, in front of starlette's stack.
        direct=direct,
        edge=_cors(config.server.cors),
        routes=routes,
        middleware=[
            Middleware(RequestMiddleware, route_labels=frozenset(_LABELLED_ROUTES)),
            Middleware(AuthMiddleware, public_paths=lambda: public_paths),
        ],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    # Starlette answers `/v1/chat/completions/` with a 307 whose Location is built from the
    # Host header: an open redirect for whoever controls that header (issue 19, item 14).
    # Every route has one spelling; anything else is an ordinary 404.
    app.router.redirect_slashes = False
    return app


async def _start_discovery(
    stack: contextlib.AsyncExitStack,
    gateway: Gateway,
    client: BedrockClient,
    runtime: Runtime,
    config: GatewayConfig,
) -> None:
    """`bedrock.discover`: list every configured region now and every `interval_s`."""
    if not isinstance(client, AioBedrockClient):
        logger.warning("bedrock.discover is on, but the Bedrock client cannot list models")
        return
    default = client.default_region
    regions = sorted({r or default for r in runtime.catalog.regions()} - {None}, key=str)
    if default in regions:  # the default region first: its profiles make the aliases
        regions.remove(default)
        regions.insert(0, default)
    discovery = Discovery(
        client.list_region,
        [r for r in regions if r is not None],
        interval_s=config.bedrock.discover.interval_s,
        install=gateway.install_discovered,
    )
    await discovery.start()
    stack.push_async_callback(discovery.aclose)


def _cors(cors: CorsConfig) -> Callable[[ASGIApp], ASGIApp] | None:
    """Starlette's CORS middleware at the very edge, when origins are configured.

    Outside everything else, so a browser's preflight (`OPTIONS` with
    `Access-Control-Request-Method`) is answered here: it carries no key by design, and it
    is neither authenticated nor a usage record. Simple and actual requests get the
    `Access-Control-*` headers only for a listed origin. With no origins configured no
    CORS header is ever sent, and a preflight is an ordinary request (a 405).
    """
    if not cors.allow_origins:
        return None

    def edge(app: ASGIApp) -> ASGIApp:
        return CORSMiddleware(
            app,
            allow_origins=cors.allow_origins,
            allow_methods=["GET", "POST", "DELETE", "PATCH", "PUT"],
            allow_headers=cors.allow_headers,
            expose_headers=_CORS_EXPOSED,
            max_age=cors.max_age_s,
        )

    return edge


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


def _install_sigterm(gateway: Gateway, graceful_shutdown_s: float) -> Callable[[], None]:
    """SIGTERM: fail `/readyz` at once, and let uvicorn start draining a moment later.

    Load balancers and Kubernetes endpoints need a moment to stop sending new requests
    after readiness fails; only then does uvicorn stop accepting connections and give the
    requests in flight `server.graceful_shutdown_s` to finish. A second SIGTERM goes
    straight to uvicorn.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach the main thread only (tests run us in threads)
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return lambda: None
    loop = asyncio.get_running_loop()
    drain_s = min(_DRAIN_WINDOW_S, graceful_shutdown_s)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if not gateway.ready:
            previous(signum, frame)
            return
        gateway.ready = False
        logger.info("SIGTERM: not ready any more; draining in %.1f s", drain_s)
        loop.call_soon_threadsafe(loop.call_later, drain_s, previous, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running server process.

    Everything alive after start-up (modules, botocore's service model, config) lives as
    long as the process: `gc.freeze()` moves it out of the collector's way. A request
    allocates thousands of short-lived containers, so the default first-generation threshold
    (700) ran a collection every few requests; profiles showed 8% of CPU in the collector
    and 40 ms pauses. Reference counting still frees almost everything at once.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, 50, 100)


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
    return create_app(config, config_path=path, tune_gc=True)
