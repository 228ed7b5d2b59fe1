"""The long-lived parts of a running gateway, and the config-derived `Runtime` it swaps.

`Runtime` is everything derived from the config that may change on SIGHUP (keys, models,
prices): built whole, swapped by one assignment, and captured by each request at its
start, so a reload never changes the rules under a request already in flight.
`Gateway` owns what lives for the whole process: the Bedrock client, the usage recorder,
metrics, the image fetcher, the limiter; the pipeline (`gateway.pipeline.handler`) takes
each request through them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from gateway.bedrock.catalog import ModelCatalog
from gateway.bedrock.client import BedrockClient
from gateway.bedrock.retries import RetryPolicy
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.images.fetcher import ImageFetcher
from gateway.keys.index import KeyIndex
from gateway.limits import Admission, Limiter
from gateway.metrics import Metrics
from gateway.pipeline.guardrails import GuardrailPolicy
from gateway.server.scheduling import SliceLane
from gateway.usage.pricing import PriceBook
from gateway.usage.recorder import UsageRecorder

__all__ = ["Gateway", "Runtime"]

logger = logging.getLogger("gateway")

# Sections read once at start: changing them needs a restart, and a reload says so.
_RESTART_SECTIONS = ("server", "bedrock", "usage", "limits", "metrics", "logging")


@dataclass(frozen=True, slots=True)
class Runtime:
    config: GatewayConfig
    keys: KeyIndex
    catalog: ModelCatalog
    prices: PriceBook
    guardrails: GuardrailPolicy | None = None  # None: no guardrail configured anywhere

    @classmethod
    def build(cls, config: GatewayConfig) -> Runtime:
        return cls(
            config=config,
            keys=KeyIndex(config.auth),
            catalog=ModelCatalog(config.models, allow_unlisted=config.allow_unlisted_models),
            prices=PriceBook(
                config.models, cross_region_surcharge=config.usage.cross_region_surcharge
            ),
            guardrails=GuardrailPolicy.build(config),
        )


class Gateway:
    def __init__(
        self,
        runtime: Runtime,
        *,
        bedrock: BedrockClient,
        recorder: UsageRecorder,
        metrics: Metrics,
        limiter: Limiter,
        images: ImageFetcher,
        limiter_factory: Callable[[GatewayConfig], Limiter],
        config_path: Path | None = None,
    ) -> None:
        self.runtime = runtime
        self.bedrock = bedrock
        self.recorder = recorder
        self.metrics = metrics
        self.limiter = limiter
        self.images = images
        self.config_path = config_path
        # Where busy streams wait between slices of their work (`gateway.server.scheduling`).
        self.stream_lane = SliceLane()
        self.max_concurrent = runtime.config.server.max_concurrent_requests
        self.retry_policy = RetryPolicy(max_attempts=runtime.config.bedrock.retries.max_attempts)
        self.inflight_billable = 0
        self.ready = True
        self._limiter_factory = limiter_factory
        self._charges: set[asyncio.Task[None]] = set()

    def charge_later(self, admission: Admission, *, tokens: int, cost_usd: Decimal | None) -> None:
        """Charge a finished request's usage to its limits, on a task of its own: it may
        wait on Redis, and the response is already out."""
        task = asyncio.get_running_loop().create_task(
            self.limiter.charge(admission, tokens=tokens, cost_usd=cost_usd)
        )
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)

    def reload(self, env: dict[str, str]) -> bool:
        """SIGHUP: re-read the config file; keep the old one if the new one is broken."""
        if self.config_path is None:
            logger.warning("reload requested, but the gateway runs without a config file")
            return False
        try:
            config = load_config(self.config_path, env)
            runtime = Runtime.build(config)
        except (ConfigError, ValueError) as exc:
            logger.error("config reload refused, keeping the running config: %s", exc)
            return False
        old = self.runtime.config
        unchanged = [
            name for name in _RESTART_SECTIONS if getattr(old, name) != getattr(config, name)
        ]
        if unchanged:
            logger.warning(
                "config reload: changes to %s take effect only after a restart",
                ", ".join(unchanged),
            )
        self.runtime = runtime
        self.limiter = self._limiter_factory(config)
        logger.info(
            "config reloaded",
            extra={"keys": len(runtime.keys), "models": len(config.models)},
        )
        return True
