"""Which Bedrock model a client's `model` string means.

Clients send the names they know (`gpt-4o`, `claude-3-5-sonnet`); the config maps public
names and aliases to a Bedrock model id, inference-profile id or ARN, plus a region. Raw
Bedrock ids pass through only when `allow_unlisted_models` is true, so that an operator
decides which models (and prices) the fleet can reach.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config import ModelConfig
from gateway.errors import NotFoundError

__all__ = ["ModelCatalog", "ResolvedModel"]


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    public_name: str  # the config's canonical name, or the raw id for unlisted models
    bedrock_id: str
    region: str | None
    kind: str  # "chat" | "embedding"
    config: ModelConfig | None  # None for unlisted pass-through ids

    @property
    def metric_label(self) -> str:
        """Bounded label value: config names only; every unlisted id shares one label."""
        return self.public_name if self.config is not None else "unlisted"


class ModelCatalog:
    def __init__(self, models: Iterable[ModelConfig], *, allow_unlisted: bool) -> None:
        self._models = list(models)
        self._allow_unlisted = allow_unlisted
        self._by_name: dict[str, ResolvedModel] = {}
        for model in self._models:
            resolved = ResolvedModel(
                public_name=model.name,
                bedrock_id=model.bedrock_id,
                region=model.region,
                kind=model.kind,
                config=model,
            )
            for name in (model.name, *model.aliases):
                self._by_name[name] = resolved

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

    def get(self, name: str) -> ResolvedModel | None:
        """Listed models only (for `GET /v1/models/{id}`)."""
        return self._by_name.get(name)

    def public_names(self) -> list[str]:
        """Every name a client may send, canonical names and aliases, in config order."""
        return list(self._by_name)

    def regions(self) -> set[str | None]:
        return {model.region for model in self._models}
