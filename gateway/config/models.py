"""`models:`: what a client may send as `model`, and how each one is called and priced."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.config.base import PositiveFloat, PositiveInt, Price, Strict

# Bedrock's service tiers a model can be configured to accept (Converse `serviceTier`).
Tier = Literal["default", "flex", "priority"]


class TierPricing(Strict):
    """One tier's prices, USD per 1,000 tokens; unset fields fall back to the model's."""

    input_per_1k: Price | None = None
    output_per_1k: Price | None = None
    cache_read_per_1k: Price | None = None
    cache_write_per_1k: Price | None = None
    cache_write_1h_per_1k: Price | None = None


class PricingConfig(Strict):
    """USD per 1,000 tokens. Decimal, so that summing millions of records does not drift."""

    input_per_1k: Price | None = None
    output_per_1k: Price | None = None
    cache_read_per_1k: Price | None = None
    cache_write_per_1k: Price | None = None  # 5-minute cache writes
    cache_write_1h_per_1k: Price | None = None  # 1-hour cache writes
    # Prices of the flex and priority service tiers; a field left out keeps the default price.
    tiers: dict[Tier, TierPricing] = Field(default_factory=dict)


Effort = Literal["low", "medium", "high"]


def _default_budgets() -> dict[Effort, int]:
    return {"low": 1024, "medium": 4096, "high": 16384}


class ReasoningConfig(Strict):
    supported: bool = False
    # budget: thinking with `budget_tokens` from `budgets`; adaptive: the model decides how
    # much to think, `reasoning_effort` becomes Converse `outputConfig.effort` (Claude Opus
    # 4.7 and later refuse budget_tokens).
    mode: Literal["budget", "adaptive"] = "budget"
    budgets: dict[Effort, PositiveInt] = Field(default_factory=_default_budgets)


def _default_tiers() -> list[Tier]:
    return ["default"]


class ModelConfig(Strict):
    name: Annotated[str, Field(min_length=1)]
    bedrock_id: Annotated[str, Field(min_length=1)]
    aliases: list[str] = Field(default_factory=list)
    region: str | None = None
    # Regions (or their endpoints) tried in order before the first byte; replaces `region`.
    regions: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    kind: Literal["chat", "embedding"] = "chat"
    pricing: PricingConfig | None = None
    fallbacks: list[str] = Field(default_factory=list)
    reasoning: ReasoningConfig = ReasoningConfig()
    auto_cache_system: bool = False
    ttft_timeout_s: PositiveFloat | None = None
    # native: Converse outputConfig.textFormat json_schema (and toolSpec.strict);
    # tool: a forced tool stands for response_format (works on every tool-capable model).
    structured_output: Literal["native", "tool"] = "tool"
    # The tiers this model accepts; a request for another is a 400 naming service_tier.
    service_tiers: list[Tier] = Field(default_factory=_default_tiers)

    @model_validator(mode="after")
    def _one_region_key(self) -> ModelConfig:
        # Two keys for one thing would leave the reader guessing which one wins.
        if self.region is not None and self.regions:
            raise ValueError("give either region or regions, not both (regions replaces region)")
        if len(set(self.regions)) != len(self.regions):
            raise ValueError("regions lists a region twice")
        return self

    @property
    def region_list(self) -> list[str | None]:
        """The regions to try, in order: `regions`, else `region` (None: the default)."""
        return list(self.regions) if self.regions else [self.region]
