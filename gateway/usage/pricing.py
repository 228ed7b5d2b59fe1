"""What a request cost: bundled Bedrock prices, config overrides, and exact arithmetic.

Prices are USD per 1,000 tokens, as `Decimal`, in five kinds: input, output, cache read,
cache write (5-minute cache points) and 1-hour cache write. `prices.json` beside this
module holds AWS's us-east-1 on-demand prices for common models, keyed by base model id,
each with its source and the date it was checked, and the flex and priority service-tier
prices where AWS publishes them. A model's `pricing` block in the config overrides any of
them (`pricing.tiers` the tier prices); the overrides are the operator's real price, so
they are used exactly as given.

Service tiers: a request Bedrock served on `flex` or `priority` is priced at that tier's
prices, each kind falling back to the default tier's where the tier names none (AWS
prices cache reads and writes of tiers like the default's for several models). A tier
with no prices at all costs the default prices.

Cache writes: `cache_write_tokens` counts writes of every lifetime, `cache_write_1h_tokens`
the 1-hour share (Converse `usage.cacheDetails`): the rest is priced at `cache_write`, the
1-hour share at `cache_write_1h`.

How a Bedrock model id is priced:

* a base id (`anthropic.claude-3-5-haiku-20241022-v1:0`, also as a `foundation-model/`
  ARN, also with a context-window suffix such as `:200k`): its bundled price;
* a cross-region inference profile (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `ca.`, `us-gov.`,
  `global.`, bare or inside an `inference-profile/` ARN): the base model's price (its
  separate `global` price, for the models where AWS lists one), times
  `1 + cross_region_surcharge`. The default surcharge is 0: AWS bills cross-region
  inference at the price of the source region, with no extra charge. It exists for
  operators whose agreements say otherwise;
* an application inference profile, a provisioned or custom model: only the config
  knows what it costs.

A model with no known price costs `None`, never a made-up zero, and is logged as a
warning once per price book (the book is rebuilt on config reload, so construction
only indexes the config; the bundled table is read once per process). A request with
no tokens at all costs exactly zero whatever the model: Bedrock bills tokens.

Costs are rounded to 10 decimal places (`gateway.usage.money`) once, per request.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_EVEN, Context, Decimal
from importlib import resources
from typing import Any

from gateway.config import ModelConfig, PricingConfig, TierPricing
from gateway.usage.money import COST_QUANTUM, quantize_cost

__all__ = ["BundledPrice", "Price", "PriceBook", "bundled_prices"]

logger = logging.getLogger("gateway.usage")

_CROSS_REGION_PREFIXES = frozenset({"us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"})
_ARN = re.compile(r"arn:aws[a-z-]*:bedrock:[a-z0-9-]*:[0-9]*:(?P<kind>[a-z-]+)/(?P<id>.+)")
_CONTEXT_SUFFIX = re.compile(r":(?:[0-9]+k|mm)$")
# Ample precision: token counts times prices never come near 50 significant digits, so
# every product and sum below is exact until the one rounding at the end.
_EXACT = Context(prec=50, rounding=ROUND_HALF_EVEN)
_KINDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1,000 tokens of each kind; None where the price is unknown.

    `tiers` holds the service tiers' prices ("flex", "priority"), as partial prices over
    this one (see `for_tier`).
    """

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    tiers: Mapping[str, Price] = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls, values: Sequence[Decimal | None], tiers: Mapping[str, Price] | None = None
    ) -> Price:
        """A price from the five kinds in `_KINDS` order."""
        input_, output, cache_read, cache_write, cache_write_1h = values
        return cls(input_, output, cache_read, cache_write, cache_write_1h, tiers=tiers or {})

    def scaled(self, factor: Decimal) -> Price:
        return Price.of(
            [None if p is None else p * factor for p in self.values()],
            {name: tier.scaled(factor) for name, tier in self.tiers.items()},
        )

    def overridden(self, pricing: PricingConfig | TierPricing) -> Price:
        given = (
            pricing.input_per_1k,
            pricing.output_per_1k,
            pricing.cache_read_per_1k,
            pricing.cache_write_per_1k,
            pricing.cache_write_1h_per_1k,
        )
        merged = (o if o is not None else p for p, o in zip(self.values(), given, strict=True))
        tiers = dict(self.tiers)
        if isinstance(pricing, PricingConfig):
            for name, tier in pricing.tiers.items():
                tiers[name] = tiers.get(name, Price()).overridden(tier)
        return Price.of(list(merged), tiers)

    def for_tier(self, tier: str | None) -> Price:
        """The prices of a service tier: its own, else this (the default tier's) per kind."""
        own = self.tiers.get(tier) if tier is not None else None
        if own is None:
            return self
        merged = (
            o if o is not None else p for p, o in zip(self.values(), own.values(), strict=True)
        )
        return Price.of(list(merged))

    def values(self) -> tuple[Decimal | None, ...]:
        return (self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h)


# A price's five kinds as whole numbers of 10^-exponent USD per 1,000 tokens (None where
# unknown), and the exponent.
_WholePrices = tuple[tuple[int | None, ...], int]


def _whole_prices(price: Price) -> _WholePrices:
    values = price.values()
    # The most decimal places of any price (config and table prices are finite).
    exponent = max([0, *(-int(v.as_tuple().exponent) for v in values if v is not None)])
    return (
        tuple(None if v is None else int(v.scaleb(exponent, _EXACT)) for v in values),
        exponent,
    )


@dataclass(frozen=True, slots=True)
class BundledPrice:
    """One row of `prices.json`: the in-region price and, where AWS lists it, global's."""

    name: str
    regional: Price
    global_: Price | None
    source: str
    checked: str


@functools.cache
def bundled_prices() -> Mapping[str, BundledPrice]:
    """The bundled table, read once per process (never at import time)."""
    text = resources.files("gateway.usage").joinpath("prices.json").read_text("utf-8")
    table: dict[str, BundledPrice] = {}
    for model_id, row in json.loads(text)["models"].items():
        glob = row.get("global")
        table[model_id] = BundledPrice(
            name=row["name"],
            regional=_price(row),
            global_=None if glob is None else _price(glob),
            source=row["source"],
            checked=row["checked"],
        )
    return table


def _price(row: Mapping[str, Any]) -> Price:
    names = [f.name for f in fields(Price) if f.name != "tiers"]
    tiers = {name: _price(tier) for name, tier in row.get("tiers", {}).items()}
    return Price.of([Decimal(row[n]) if n in row else None for n in names], tiers)


@dataclass(frozen=True, slots=True)
class _ModelRef:
    base_id: str | None  # None: only the config can price it
    profile: str | None  # the cross-region prefix, if any


def _parse_model_id(model_id: str) -> _ModelRef:
    arn = _ARN.fullmatch(model_id)
    if arn is not None:
        if arn["kind"] == "foundation-model":
            return _ModelRef(arn["id"], None)
        if arn["kind"] != "inference-profile":
            return _ModelRef(None, None)  # application profile, provisioned or custom model
        model_id = arn["id"]
    prefix, dot, rest = model_id.partition(".")
    if dot and prefix in _CROSS_REGION_PREFIXES:
        return _ModelRef(rest, prefix)
    return _ModelRef(model_id, None)


_MEMO_MAX = 4096


class PriceBook:
    """Prices every request of one config; cheap to build, rebuilt on each reload."""

    def __init__(
        self,
        models: Sequence[ModelConfig],
        *,
        cross_region_surcharge: Decimal = Decimal(0),
        table: Mapping[str, BundledPrice] | None = None,
    ) -> None:
        if cross_region_surcharge < 0:
            raise ValueError("cross_region_surcharge cannot be negative")
        self._multiplier = 1 + cross_region_surcharge
        self._table = table
        self._by_name: dict[str, ModelConfig] = {}
        self._by_bedrock_id: dict[str, ModelConfig] = {}
        for model in models:
            for name in (model.name, *model.aliases):
                self._by_name.setdefault(name, model)
            if model.pricing is not None:
                self._by_bedrock_id.setdefault(model.bedrock_id, model)
        self._warned: set[tuple[str, str]] = set()
        self._memo: dict[tuple[str | None, str | None], Price | None] = {}
        # (name, model id, tier) -> that price in whole units (`_whole_prices`).
        self._whole: dict[tuple[str | None, str | None, str | None], _WholePrices] = {}

    def price(self, *, model: str | None, bedrock_model_id: str | None) -> Price | None:
        """The price per 1,000 tokens for a request, or None if nothing is known.

        Remembered per (name, model id): every request asks, and the answer depends only
        on the config this book was built from (a reload builds a new book). The pairs
        come from the model catalogue, so the memo stays small; it stops growing at
        `_MEMO_MAX` all the same.
        """
        key = (model, bedrock_model_id)
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._look_up(model, bedrock_model_id)
        if len(self._memo) < _MEMO_MAX:
            self._memo[key] = found
        return found

    def _look_up(self, model: str | None, bedrock_model_id: str | None) -> Price | None:
        entry = self._config_entry(model, bedrock_model_id)
        model_id = bedrock_model_id or (entry.bedrock_id if entry is not None else None)
        bundled = self._bundled(model_id) if model_id is not None else None
        override = entry.pricing if entry is not None else None
        if override is None:
            return bundled
        return (bundled or Price()).overridden(override)

    def is_priced(self, *, model: str | None, bedrock_model_id: str | None) -> bool:
        """Whether input and output tokens of this model have a price (cache prices may be
        missing: most calls use no cache)."""
        price = self.price(model=model, bedrock_model_id=bedrock_model_id)
        return price is not None and price.input is not None and price.output is not None

    def cost(
        self,
        *,
        model: str | None,
        bedrock_model_id: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        cache_write_1h_tokens: int = 0,
        service_tier: str | None = None,
    ) -> Decimal | None:
        """USD for one request, rounded to 10 places; None when a needed price is unknown.

        `cache_write_1h_tokens` is the 1-hour share of `cache_write_tokens`; `service_tier`
        the tier Bedrock served on (None or "default": the default prices).
        """
        one_hour = min(cache_write_1h_tokens, cache_write_tokens)
        tokens = (
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens - one_hour,
            one_hour,
        )
        if not any(tokens):
            return quantize_cost(Decimal(0))
        label = bedrock_model_id or model or "<no model>"
        key = (model, bedrock_model_id, service_tier)
        try:
            per_1k, exponent = self._whole[key]
        except KeyError:
            found = self.price(model=model, bedrock_model_id=bedrock_model_id)
            if found is None:
                self._warn_once(label, "no price")
                return None
            per_1k, exponent = _whole_prices(found.for_tier(service_tier))
            if len(self._whole) < _MEMO_MAX:
                self._whole[key] = per_1k, exponent
        # Exact integer arithmetic: each price is a whole number of 10^-exponent USD per
        # 1,000 tokens, so the sum is one integer, scaled once (a Decimal multiply and add
        # per kind cost five times as much, on every request).
        total = 0
        for kind, count, price in zip(_KINDS, tokens, per_1k, strict=True):
            if not count:
                continue
            if price is None:
                self._warn_once(label, f"no {kind} price")
                return None
            total += count * price
        return (
            Decimal(total)
            .scaleb(-exponent - 3, _EXACT)
            .quantize(COST_QUANTUM, ROUND_HALF_EVEN, _EXACT)
        )

    def _config_entry(self, model: str | None, bedrock_model_id: str | None) -> ModelConfig | None:
        # The public name's entry, unless a fallback called another model: then the entry
        # (if any) that prices the model actually called.
        if model is not None:
            entry = self._by_name.get(model)
            if entry is not None and bedrock_model_id in (None, entry.bedrock_id):
                return entry
        if bedrock_model_id is not None:
            return self._by_bedrock_id.get(bedrock_model_id)
        return None

    def _bundled(self, model_id: str) -> Price | None:
        ref = _parse_model_id(model_id)
        if ref.base_id is None:
            return None
        table = self._table if self._table is not None else bundled_prices()
        row = table.get(ref.base_id) or table.get(_CONTEXT_SUFFIX.sub("", ref.base_id))
        if row is None:
            return None
        if ref.profile is None:
            return row.regional
        price = row.global_ if ref.profile == "global" and row.global_ else row.regional
        return price.scaled(self._multiplier) if self._multiplier != 1 else price

    def _warn_once(self, label: str, what: str) -> None:
        if (label, what) not in self._warned:
            self._warned.add((label, what))
            logger.warning(
                "%s is known for model %s; its requests are recorded with an unknown cost",
                what,
                label,
            )
