"""Which Bedrock model a client's `model` string means.

Clients send the names they know (`gpt-4o`, `claude-3-5-sonnet`); the config maps public
names and aliases to a Bedrock model id, inference-profile id or ARN, plus a region. Raw
Bedrock ids pass through only when `allow_unlisted_models` is true, so that an operator
decides which models (and prices) the fleet can reach.

A model that lists several `regions` is several candidates, one per region, in order:
`candidates()` gives a request's whole list (the model in each of its regions, then each
fallback in each of its regions), computed once here rather than on every request.
Models discovered in the account (`gateway.bedrock.discovery`) join the catalogue under
their own ids; a configured name always wins a clash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.config import ModelConfig
from gateway.errors import NotFoundError

__all__ = ["DiscoveredModel", "ModelCatalog", "ResolvedModel"]


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    """A model found in the account, and its capability flags from the listing."""

    config: ModelConfig
    capabilities: Mapping[str, bool | None]


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    public_name: str  # the config's canonical name, or the raw id for unlisted models
    bedrock_id: str
    region: str | None
    kind: str  # "chat" | "embedding"
    config: ModelConfig | None  # None for unlisted pass-through ids
    # The model lists several regions: its (model, region) pairs fail over and cool down.
    multi_region: bool = False
    source: Literal["config", "discovered"] = "config"

    @property
    def metric_label(self) -> str:
        """Bounded label value: config names only; every unlisted id shares one label."""
        return self.public_name if self.config is not None else "unlisted"


def _resolved(model: ModelConfig, source: Literal["config", "discovered"]) -> list[ResolvedModel]:
    """One candidate per region of the model, in the configured order."""
    regions = model.region_list
    first = ResolvedModel(
        public_name=model.name,
        bedrock_id=model.bedrock_id,
        region=regions[0],
        kind=model.kind,
        config=model,
        multi_region=len(regions) > 1,
        source=source,
    )
    return [first, *(dataclasses.replace(first, region=region) for region in regions[1:])]


class ModelCatalog:
    def __init__(
        self,
        models: Iterable[ModelConfig],
        *,
        allow_unlisted: bool,
        discovered: Iterable[DiscoveredModel] = (),
    ) -> None:
        self._models = list(models)
        self._allow_unlisted = allow_unlisted
        self._by_name: dict[str, ResolvedModel] = {}
        self._regional: dict[str, list[ResolvedModel]] = {}
        for model in self._models:
            self._add(model, "config")
        configured = set(self._by_name)
        self._capabilities: dict[str, Mapping[str, bool | None]] = {}
        for found in discovered:
            model = found.config
            if model.name in configured:
                continue  # a configured entry always wins
            self._capabilities[model.name] = found.capabilities
            model = model.model_copy(
                update={"aliases": [a for a in model.aliases if a not in self._by_name]}
            )
            self._add(model, "discovered")
        self._candidates: dict[str, tuple[ResolvedModel, ...]] = {}
        for name, regional in self._regional.items():
            config = regional[0].config
            assert config is not None
            chain = [*regional]
            for fallback in config.fallbacks:
                chain.extend(self._regional.get(self._by_name[fallback].public_name, ()))
            self._candidates[name] = tuple(chain)
        self.multi_region = any(len(r) > 1 for r in self._regional.values())

    def _add(self, model: ModelConfig, source: Literal["config", "discovered"]) -> None:
        regional = _resolved(model, source)
        self._regional[model.name] = regional
        for name in (model.name, *model.aliases):
            self._by_name.setdefault(name, regional[0])

    @property
    def models(self) -> list[ModelConfig]:
        return self._models

    def resolve(self, name: str) -> ResolvedModel:
        resolved = self._by_name.get(name)
        if resolved is not None:
            return resolved
        if self._allow_unlisted and name:
            return ResolvedModel(
                public_name=name, bedrock_id=name, region=None, kind="chat", config=None
            )
        raise NotFoundError(
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def fallbacks(self, model: ResolvedModel) -> list[ResolvedModel]:
        """The model's configured fallbacks, in order (names were checked at config load)."""
        if model.config is None:
            return []
        return [self._by_name[name] for name in model.config.fallbacks]

    def candidates(self, model: ResolvedModel) -> tuple[ResolvedModel, ...]:
        """What a request for `model` may try, in order: the model in each of its regions,
        then each fallback in each of its regions."""
        chain = self._candidates.get(model.public_name)
        return chain if chain is not None and model.config is not None else (model,)

    def get(self, name: str) -> ResolvedModel | None:
        """Listed models only (for `GET /v1/models/{id}`)."""
        return self._by_name.get(name)

    def public_names(self) -> list[str]:
        """Every name a client may send, canonical names and aliases, in config order."""
        return list(self._by_name)

    def regions(self) -> set[str | None]:
        """Every region a configured or discovered model may be called in."""
        return {c.region for regional in self._regional.values() for c in regional}

    def discovered(self) -> list[ModelConfig]:
        """The discovered models the catalogue offers (those no configured name shadows)."""
        return [
            r[0].config
            for r in self._regional.values()
            if r[0].source == "discovered" and r[0].config is not None
        ]

    def capabilities(self, model: ResolvedModel) -> Mapping[str, bool | None] | None:
        """A discovered model's capability flags from the listing; None for configured ones."""
        if model.source != "discovered":
            return None
        return self._capabilities.get(model.public_name)
