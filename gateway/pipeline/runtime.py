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
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from gateway.bedrock.breaker import RegionBreaker
from gateway.bedrock.catalog import DiscoveredModel, ModelCatalog
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
    def build(cls, config: GatewayConfig, *, discovered: Sequence[DiscoveredModel] = ()) -> Runtime:
        catalog = ModelCatalog(
            config.models, allow_unlisted=config.allow_unlisted_models, discovered=discovered
        )
        return cls(
            config=config,
            keys=KeyIndex(config.auth),
            catalog=catalog,
            prices=PriceBook(
                [*config.models, *catalog.discovered()],
                cross_region_surcharge=config.usage.cross_region_surcharge,
            ),
            guardrails=GuardrailPolicy.build(config),
        )

    def with_discovered(self, discovered: Sequence[DiscoveredModel]) -> Runtime:
        """This runtime with a new set of models discovered in the account."""
        return Runtime.build(self.config, discovered=discovered).with_keys(self.keys)

    def with_keys(self, keys: KeyIndex) -> Runtime:
        return dataclasses.replace(self, keys=keys)


def _roles(config: GatewayConfig) -> dict[str, tuple[str | None, str | None, int]]:
    return {
        name: (team.role_arn, team.external_id, team.role_duration_s)
        for name, team in config.auth.teams.items()
        if team.role_arn
    }


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
        team_clients: Mapping[str, BedrockClient] | None = None,
        default_region: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.bedrock = bedrock
        # Teams whose calls are signed with an assumed role (`auth.teams.<team>.role_arn`):
        # their own clients, fixed at start like the Bedrock client itself.
        self.team_clients: Mapping[str, BedrockClient] = team_clients or {}
        # The region of models that name none (the ledger's `region` says it too).
        self.default_region = default_region or runtime.config.bedrock.region
        # Only when some model lists several regions: otherwise nothing to skip or learn.
        self.breaker = (
            RegionBreaker(runtime.config.bedrock.region_cooldown_s)
            if runtime.catalog.multi_region
            else None
        )
        # Models found in the account (`bedrock.discover`), kept across config reloads.
        self.discovered: Sequence[DiscoveredModel] = ()
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

    def install_discovered(self, discovered: Sequence[DiscoveredModel]) -> None:
        """Offer a new set of models found in the account (`gateway.bedrock.discovery`)."""
        self.discovered = discovered
        self.runtime = self.runtime.with_discovered(discovered)
        if self.breaker is None and self.runtime.catalog.multi_region:
            self.breaker = RegionBreaker(self.runtime.config.bedrock.region_cooldown_s)

    def charge_later(self, admission: Admission, *, tokens: int, cost_usd: Decimal | None) -> None:
        """Charge a finished request's usage to its limits, on a task of its own: it may
        wait on Redis, and the response is already out."""
        task = asyncio.get_running_loop().create_task(
            self.limiter.charge(admission, tokens=tokens, cost_usd=cost_usd)
        )
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)

    def _regions(self, runtime: Runtime) -> set[str | None]:
        return {region or self.default_region for region in runtime.catalog.regions()}

    def reload(self, env: dict[str, str]) -> bool:
        """SIGHUP: re-read the config file; keep the old one if the new one is broken."""
        if self.config_path is None:
            logger.warning("reload requested, but the gateway runs without a config file")
            return False
        try:
            config = load_config(self.config_path, env)
            runtime = Runtime.build(config, discovered=self.discovered)
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
        # Bedrock clients (one per region, and per team role) are opened at start.
        new_regions = self._regions(runtime) - self._regions(self.runtime)
        if new_regions:
            logger.warning(
                "config reload: models now use region(s) %s, which have no Bedrock client "
                "until a restart; their calls fail until then",
                ", ".join(sorted(str(r) for r in new_regions)),
            )
        if _roles(config) != _roles(old):
            logger.warning(
                "config reload: teams' role_arn, external_id and role_duration_s take "
                "effect only after a restart"
            )
        self.runtime = runtime
        if self.breaker is None and runtime.catalog.multi_region:
            self.breaker = RegionBreaker(old.bedrock.region_cooldown_s)
        self.limiter = self._limiter_factory(config)
        logger.info(
            "config reloaded",
            extra={"keys": len(runtime.keys), "models": len(config.models)},
        )
        return True
