"""The model catalogue read from the account: `bedrock.discover` (opt-in).

Wrong or bare model ids are among the failures users report most: a model that needs an
inference profile called by its base id, a typo in a hand-written catalogue. With
discovery on, the gateway asks each configured region what the account can call
(ListFoundationModels, and ListInferenceProfiles for system and application profiles) at
start and every `interval_s`, and offers what it finds:

* under the id a caller must use: the model id for models callable on demand, the
  profile id for a system (cross-region) profile, the ARN for an application profile;
* under a clean alias (`claude-sonnet-4-5`): the model's on-demand id where it has one,
  else its cross-region profile for the region's geography (`us.`, `eu.`, `apac.`), else
  the `global.` profile;
* with the listing's capability flags (streaming, images; the listing says nothing about
  tools, documents or reasoning, so those stay unknown: `None`);
* priced from the bundled table (an unpriced one follows the unpriced-model rule);
* in every configured region where it was listed, in the configured order.

A configured entry always wins a clash (`ModelCatalog`). `catalogue()` is pure: listings
in, model configs out, so it is tested without AWS; `Discovery` runs the refresh loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.bedrock.catalog import DiscoveredModel
from gateway.config import ModelConfig

__all__ = ["START_TIMEOUT_S", "Discovery", "Listing", "catalogue", "clean_alias"]

logger = logging.getLogger("gateway.bedrock")

# The longest the first listing may hold the gateway's start.
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Listing:
    """What one region answered: ListFoundationModels and ListInferenceProfiles summaries."""

    region: str
    models: Sequence[Mapping[str, Any]]
    profiles: Sequence[Mapping[str, Any]]


# The geography prefix of the system profiles that start in a region, by region prefix.
_GEOGRAPHY = {"us": "us", "eu": "eu", "ap": "apac", "ca": "ca", "sa": "us", "me": "eu"}
_DATE = re.compile(r"-\d{8}")
_VERSION = re.compile(r"(-v1)?(:\d+)?(:\d+k)?$")


def clean_alias(model_id: str) -> str:
    """`anthropic.claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5`: what people type."""
    base = model_id.split(".", 1)[1] if "." in model_id else model_id
    return _VERSION.sub("", _DATE.sub("", base))


def _kind(summary: Mapping[str, Any]) -> str | None:
    outputs = summary.get("outputModalities") or []
    if "EMBEDDING" in outputs:
        return "embedding"
    if "TEXT" in outputs:
        return "chat"
    return None  # image and video generation: no surface of ours serves them


def _capabilities(summary: Mapping[str, Any]) -> dict[str, bool | None]:
    inputs = summary.get("inputModalities") or []
    return {
        "streaming": bool(summary.get("responseStreamingSupported")),
        "images": "IMAGE" in inputs,
        # Not in the listing; a model's own documentation says.
        "tools": None,
        "documents": None,
        "reasoning": None,
    }


def _model_id(arn: str) -> str:
    return arn.rsplit("foundation-model/", 1)[-1]


@dataclass
class _Entry:
    bedrock_id: str
    kind: str
    capabilities: dict[str, bool | None]
    regions: list[str]
    alias: str | None = None


def catalogue(listings: Sequence[Listing]) -> list[DiscoveredModel]:
    """The models to offer, from each region's listing (regions in the configured order)."""
    entries: dict[str, _Entry] = {}
    alias_targets: dict[str, tuple[int, str]] = {}  # alias -> (preference, name)

    def offer(name: str, bedrock_id: str, summary: Mapping[str, Any], region: str) -> None:
        kind = _kind(summary)
        if kind is None:
            return
        entry = entries.get(name)
        if entry is None:
            entries[name] = _Entry(bedrock_id, kind, _capabilities(summary), [region])
        elif region not in entry.regions:
            entry.regions.append(region)

    def prefer(alias: str, name: str, rank: int) -> None:
        current = alias_targets.get(alias)
        if current is None or rank < current[0]:
            alias_targets[alias] = (rank, name)

    for listing in listings:
        region = listing.region
        by_id = {str(m.get("modelId")): m for m in listing.models if m.get("modelId")}
        geography = _GEOGRAPHY.get(region.split("-", 1)[0], "")
        for model_id, summary in by_id.items():
            if "ON_DEMAND" in (summary.get("inferenceTypesSupported") or []):
                offer(model_id, model_id, summary, region)
                prefer(clean_alias(model_id), model_id, 0)
        for profile in listing.profiles:
            profile_id = str(profile.get("inferenceProfileId") or "")
            models = profile.get("models") or []
            if not profile_id or not models or profile.get("status", "ACTIVE") != "ACTIVE":
                continue
            underlying = by_id.get(_model_id(str(models[0].get("modelArn") or "")))
            if underlying is None:
                continue  # a profile over a model this region does not list
            summary = underlying
            if profile.get("type") == "APPLICATION":
                arn = str(profile.get("inferenceProfileArn") or "")
                if arn:
                    offer(arn, arn, summary, region)
                continue
            offer(profile_id, profile_id, summary, region)
            prefix = profile_id.split(".", 1)[0]
            rank = 1 if prefix == geography else 2 if prefix == "global" else 3
            prefer(clean_alias(str(summary["modelId"])), profile_id, rank)

    for alias, (_, name) in alias_targets.items():
        # Only offered models get an alias (image generators are listed, never offered).
        if alias not in entries and name in entries and entries[name].alias is None:
            entries[name].alias = alias
    found = []
    for name, entry in entries.items():
        config = ModelConfig(
            name=name,
            bedrock_id=entry.bedrock_id,
            aliases=[entry.alias] if entry.alias else [],
            kind="embedding" if entry.kind == "embedding" else "chat",
            regions=entry.regions if len(entry.regions) > 1 else [],
            region=entry.regions[0] if len(entry.regions) == 1 else None,
        )
        found.append(DiscoveredModel(config, entry.capabilities))
    return found


class Discovery:
    """Lists every region at start and every `interval_s`; hands the result to `install`.

    A region that cannot be listed keeps what it offered before (a control-plane hiccup
    must not take models away); the first failure of a streak is logged as a warning.
    """

    def __init__(
        self,
        list_region: Callable[[str], Awaitable[Listing]],
        regions: Sequence[str],
        *,
        interval_s: float,
        install: Callable[[list[DiscoveredModel]], None],
    ) -> None:
        self._list_region = list_region
        self._regions = list(regions)
        self._interval_s = interval_s
        self._install = install
        self._last: dict[str, Listing] = {}
        self._failing: set[str] = set()
        self._offered: list[DiscoveredModel] | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        for region in self._regions:
            try:
                self._last[region] = await self._list_region(region)
            except Exception as exc:  # any failure keeps the region's last listing
                if region not in self._failing:
                    logger.warning(
                        "model discovery: cannot list region %s (%s); keeping its last listing",
                        region,
                        getattr(exc, "name", type(exc).__name__),
                    )
                self._failing.add(region)
                continue
            self._failing.discard(region)
        listings = [self._last[r] for r in self._regions if r in self._last]
        models = catalogue(listings)
        if models == self._offered:
            # Unchanged: a new runtime would only make every reader of it start over
            # (the key refresher takes a new runtime for a reload).
            return
        self._install(models)
        self._offered = models
        logger.info("model discovery: %d models offered", len(models))

    async def start(self) -> None:
        """The first listing before serving, within `START_TIMEOUT_S` (a control plane that
        hangs must not hold the gateway's start); then the loop."""
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await self.refresh()
        except TimeoutError:
            logger.warning(
                "model discovery: no listing within %.0f s at start; serving the configured "
                "models, discovered ones join when the listing answers",
                START_TIMEOUT_S,
            )
            self._task = asyncio.get_running_loop().create_task(self._run(first_wait_s=0))
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self, *, first_wait_s: float | None = None) -> None:
        wait_s = self._interval_s if first_wait_s is None else first_wait_s
        while True:
            await asyncio.sleep(wait_s)
            wait_s = self._interval_s
            try:
                await self.refresh()
            except Exception:
                # A listing we cannot read (a model id our config refuses, say) keeps the
                # models offered now; the loop must outlive it.
                logger.exception("model discovery: refresh failed; keeping the current models")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
