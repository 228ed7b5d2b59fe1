"""Prices: bundled table, cross-region profiles, ARNs, config overrides, unknown models.

Expected costs are worked out by hand from the per-1,000-token prices in prices.json,
so a changed price or a slipped decimal point shows up as a failing row.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ModelConfig, PricingConfig, UsageConfig
from gateway.usage.pricing import PriceBook, bundled_prices

D = Decimal


def _cost(book: PriceBook, model: str | None, bedrock_id: str | None, *tokens: int) -> Any:
    i, o, cr, cw = (*tokens, 0, 0, 0, 0)[:4]
    return book.cost(
        model=model,
        bedrock_model_id=bedrock_id,
        input_tokens=i,
        output_tokens=o,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
    )


BUNDLED_CASES = [
    ("anthropic.claude-3-haiku-20240307-v1:0", (1000, 1000), "0.0015"),
    ("anthropic.claude-3-haiku-20240307-v1:0:200k", (1000, 1000), "0.0015"),
    # 2 x 0.0008 + 0.5 x 0.004 + 10 x 0.00008 + 3 x 0.001
    ("anthropic.claude-3-5-haiku-20241022-v1:0", (2000, 500, 10000, 3000), "0.0074"),
    ("anthropic.claude-opus-4-20250514-v1:0", (1000, 1000, 1000, 1000), "0.11025"),
    ("mistral.mistral-large-2407-v1:0", (1000, 1000), "0.008"),
    ("amazon.titan-embed-text-v2:0", (10000,), "0.0002"),
    ("cohere.embed-multilingual-v3", (2500,), "0.00025"),
    ("amazon.nova-pro-v1:0", (1000, 1000, 4000), "0.0048"),
    # 8.75e-9 rounds half-even to 10 places: ...87|5 -> ...88, and ...262|5 -> ...262.
    ("amazon.nova-micro-v1:0", (0, 0, 1), "0.0000000088"),
    ("amazon.nova-micro-v1:0", (0, 0, 3), "0.0000000262"),
    # Cross-region profiles cost what the base model costs (no surcharge by default).
    ("us.meta.llama3-3-70b-instruct-v1:0", (1234, 567), "0.00129672"),
    ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", (1000, 1000), "0.018"),
    ("apac.anthropic.claude-3-5-sonnet-20240620-v1:0", (1000, 1000), "0.018"),
    # ... except where AWS lists a separate price for the global profile.
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", (1000, 1000), "0.018"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", (1000, 1000), "0.0198"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", (1000, 1000, 1000, 1000), "0.00735"),
    ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0", (1000, 1000), "0.004"),
    (
        "arn:aws:bedrock:us-west-2:123456789012:inference-profile/"
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        (1000, 1000),
        "0.018",
    ),
]


@pytest.mark.parametrize(("bedrock_id", "tokens", "expected"), BUNDLED_CASES)
def test_bundled_prices(bedrock_id: str, tokens: tuple[int, ...], expected: str) -> None:
    cost = _cost(PriceBook([]), "whatever", bedrock_id, *tokens)
    assert cost == D(expected)
    assert cost.as_tuple().exponent == -10  # always quantized to the stored precision


APP_PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
MODELS = [
    ModelConfig(
        name="haiku",
        aliases=["gpt-4o-mini"],
        bedrock_id="anthropic.claude-3-5-haiku-20241022-v1:0",
        pricing=PricingConfig(input_per_1k=D("0.0005")),
    ),
    ModelConfig(
        name="prod-sonnet",
        bedrock_id=APP_PROFILE,
        pricing=PricingConfig(input_per_1k=D("0.003"), output_per_1k=D("0.015")),
    ),
    ModelConfig(
        name="negotiated",
        bedrock_id="us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        pricing=PricingConfig(input_per_1k=D("0.002"), output_per_1k=D("0.01")),
    ),
    ModelConfig(name="plain-nova", bedrock_id="amazon.nova-lite-v1:0"),
    ModelConfig(name="unpriced-profile", bedrock_id=APP_PROFILE.replace("a1b2c3", "zzz")),
]


@pytest.mark.parametrize(
    ("model", "bedrock_id", "expected"),
    [
        # A partial override: input from the config, output from the bundled table.
        ("haiku", "anthropic.claude-3-5-haiku-20241022-v1:0", "0.0045"),
        ("gpt-4o-mini", "anthropic.claude-3-5-haiku-20241022-v1:0", "0.0045"),
        ("haiku", None, "0.0045"),
        # An application inference profile is priced by its config entry, and only so.
        ("prod-sonnet", APP_PROFILE, "0.018"),
        ("unpriced-profile", APP_PROFILE.replace("a1b2c3", "zzz"), None),
        # A fallback called another model: price what was called, not what was asked.
        ("haiku", "amazon.nova-lite-v1:0", "0.0003"),
        ("haiku", APP_PROFILE, "0.018"),
        ("plain-nova", "amazon.nova-lite-v1:0", "0.0003"),
        # Unlisted model id passed through: bundled price by id.
        (None, "anthropic.claude-3-haiku-20240307-v1:0", "0.0015"),
    ],
)
def test_config_overrides(model: str | None, bedrock_id: str | None, expected: str | None) -> None:
    cost = _cost(PriceBook(MODELS), model, bedrock_id, 1000, 1000)
    assert cost == (None if expected is None else D(expected))


def test_cross_region_surcharge_applies_to_bundled_prices_only() -> None:
    book = PriceBook(MODELS, cross_region_surcharge=D("0.1"))
    assert _cost(book, None, "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", 1000, 1000) == D(
        "0.0198"
    )
    assert _cost(book, None, "global.anthropic.claude-sonnet-4-5-20250929-v1:0", 1000, 1000) == D(
        "0.0198"
    )
    assert _cost(book, None, "anthropic.claude-3-7-sonnet-20250219-v1:0", 1000, 1000) == D("0.018")
    # The operator's own price for a profile is already what they pay, by name or by id.
    assert _cost(book, None, "us.anthropic.claude-3-7-sonnet-20250219-v1:0", 1000, 1000) == D(
        "0.012"
    )
    assert _cost(
        book, "negotiated", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", 1000, 1000
    ) == D("0.012")


def test_surcharge_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        PriceBook([], cross_region_surcharge=D("-0.1"))


def test_unknown_models_cost_none_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook([])
    with caplog.at_level(logging.WARNING, logger="gateway.usage"):
        for _ in range(3):
            assert _cost(book, "mystery", "acme.mystery-v1:0", 100, 10) is None
        assert _cost(book, "other", "acme.other-v1:0", 100, 10) is None
        assert _cost(book, None, APP_PROFILE, 100, 10) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "acme.mystery-v1:0" in messages[0]
    assert "acme.other-v1:0" in messages[1]
    assert APP_PROFILE in messages[2]


def test_a_missing_kind_of_price_is_unknown_not_zero(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook([])
    with caplog.at_level(logging.WARNING, logger="gateway.usage"):
        # Embedding models have no output price; Claude 3 Haiku none for cache writes.
        assert _cost(book, None, "cohere.embed-english-v3", 100, 1) is None
        assert _cost(book, None, "cohere.embed-english-v3", 100, 1) is None
        assert _cost(book, None, "anthropic.claude-3-haiku-20240307-v1:0", 100, 1, 0, 5) is None
    assert len(caplog.records) == 2
    assert "no output price" in caplog.records[0].getMessage()
    assert "no cache_write price" in caplog.records[1].getMessage()


def test_no_tokens_cost_exactly_zero_even_for_unknown_models(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.usage"):
        assert _cost(PriceBook([]), "mystery", None, 0, 0, 0, 0) == D(0)
    assert caplog.records == []


def test_price_exposes_the_merged_price() -> None:
    price = PriceBook(MODELS).price(model="haiku", bedrock_model_id=None)
    assert price is not None
    assert (price.input, price.output, price.cache_read, price.cache_write) == (
        D("0.0005"),
        D("0.004"),
        D("0.00008"),
        D("0.001"),
    )


REQUIRED = [
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-sonnet-20240229-v1:0",
    "anthropic.claude-3-opus-20240229-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-opus-4-20250514-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "meta.llama3-8b-instruct-v1:0",
    "meta.llama3-70b-instruct-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "meta.llama3-2-11b-instruct-v1:0",
    "meta.llama3-3-70b-instruct-v1:0",
    "mistral.mistral-7b-instruct-v0:2",
    "mistral.mixtral-8x7b-instruct-v0:1",
    "mistral.mistral-large-2407-v1:0",
    "amazon.nova-micro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-premier-v1:0",
    "amazon.titan-text-express-v1",
    "amazon.titan-embed-text-v1",
    "amazon.titan-embed-text-v2:0",
    "cohere.command-r-v1:0",
    "cohere.command-r-plus-v1:0",
    "cohere.embed-english-v3",
    "cohere.embed-multilingual-v3",
]


def test_bundled_table_covers_the_common_models_with_sources() -> None:
    table = bundled_prices()
    assert set(REQUIRED) <= set(table)
    for model_id, row in table.items():
        assert row.source.startswith("https://aws.amazon.com/bedrock/pricing"), model_id
        assert date.fromisoformat(row.checked) <= date.today(), model_id
        assert row.regional.input is not None and row.regional.input > 0, model_id
        for price in (row.regional, row.global_):
            for value in price.values() if price else ():
                assert value is None or value > 0, model_id


def test_the_default_catalogue_is_priced() -> None:
    from gateway.config import default_config

    book = PriceBook(default_config().models)
    for model in default_config().models:
        assert _cost(book, model.name, model.bedrock_id, 1000) is not None, model.name


def test_usage_config_takes_a_surcharge() -> None:
    assert UsageConfig().cross_region_surcharge == 0
    assert UsageConfig(cross_region_surcharge=D("0.1")).cross_region_surcharge == D("0.1")
    with pytest.raises(ValueError):
        UsageConfig(cross_region_surcharge=D("-1"))


# -- service tiers and 1-hour cache writes ---------------------------------------------------


def _tiered_cost(book: PriceBook, bedrock_id: str, tier: str | None, **tokens: int) -> Any:
    counts = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0}
    counts["cache_write_tokens"] = 0
    counts.update(tokens)
    return book.cost(model=None, bedrock_model_id=bedrock_id, service_tier=tier, **counts)


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        # global Sonnet 4.6: 0.003 in, 0.015 out per 1,000; flex half, priority 1.75x.
        (None, "0.018"),
        ("default", "0.018"),
        ("flex", "0.009"),
        ("priority", "0.0315"),
        ("reserved", "0.018"),  # no published prices: the default's
    ],
)
def test_a_tier_costs_its_own_prices(tier: str | None, expected: str) -> None:
    book = PriceBook([])
    cost = _tiered_cost(
        book,
        "global.anthropic.claude-sonnet-4-6",
        tier,
        input_tokens=1000,
        output_tokens=1000,
    )
    assert cost == D(expected)


def test_a_tier_without_cache_prices_falls_back_to_the_default_ones() -> None:
    # Cache reads on flex: the tier lists none, so the default 0.0003 per 1,000 applies.
    book = PriceBook([])
    cost = _tiered_cost(
        book,
        "global.anthropic.claude-sonnet-4-6",
        "flex",
        input_tokens=1000,
        cache_read_tokens=1000,
    )
    assert cost == D("0.0015") + D("0.0003")


def test_one_hour_writes_are_priced_apart_from_five_minute_ones() -> None:
    book = PriceBook([])
    # global Opus 4.7: 5-minute writes 0.00625, 1-hour writes 0.01 per 1,000.
    cost = _tiered_cost(
        book,
        "global.anthropic.claude-opus-4-7",
        None,
        cache_write_tokens=3000,
        cache_write_1h_tokens=1000,
    )
    assert cost == 2 * D("0.00625") + D("0.01")


def test_one_hour_writes_without_a_price_make_the_cost_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book = PriceBook([])  # Claude 3.7 Sonnet has no 1-hour write price
    bedrock_id = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert _tiered_cost(book, bedrock_id, None, cache_write_tokens=10) is not None
    with caplog.at_level(logging.WARNING, logger="gateway.usage"):
        assert (
            _tiered_cost(book, bedrock_id, None, cache_write_tokens=10, cache_write_1h_tokens=10)
            is None
        )
    assert "no cache_write_1h price" in caplog.text


def test_config_tier_prices_override_the_bundled_ones() -> None:
    model = ModelConfig(
        name="opus",
        bedrock_id="global.anthropic.claude-opus-4-7",
        pricing=PricingConfig(
            cache_write_1h_per_1k=D("0.02"),
            tiers={"flex": {"input_per_1k": D("0.001")}},  # type: ignore[dict-item]
        ),
    )
    book = PriceBook([model])
    flex = book.cost(
        model="opus",
        bedrock_model_id="global.anthropic.claude-opus-4-7",
        input_tokens=1000,
        output_tokens=0,
        cache_read_tokens=0,
        cache_write_tokens=1000,
        cache_write_1h_tokens=1000,
        service_tier="flex",
    )
    assert flex == D("0.001") + D("0.02")


def test_regional_profiles_cost_a_tenth_more_than_global_for_the_new_claude_models() -> None:
    book = PriceBook([])
    for model_id in ("anthropic.claude-opus-4-7", "anthropic.claude-sonnet-4-6"):
        global_cost = _tiered_cost(book, f"global.{model_id}", None, input_tokens=1000)
        for prefix in ("us", "eu", "apac"):
            regional = _tiered_cost(book, f"{prefix}.{model_id}", None, input_tokens=1000)
            assert regional == global_cost * D("1.1"), (prefix, model_id)


def test_every_bundled_tier_is_a_known_tier_with_a_price() -> None:
    for model_id, row in bundled_prices().items():
        for price in (row.regional, row.global_):
            if price is None:
                continue
            assert set(price.tiers) <= {"flex", "priority"}, model_id
            for tier in price.tiers.values():
                assert tier.input is not None and tier.output is not None, model_id


_PRICES = (
    st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False, allow_infinity=False)
    | st.none()
)


@settings(max_examples=300, deadline=None)
@given(
    prices=st.tuples(_PRICES, _PRICES, _PRICES, _PRICES, _PRICES),
    tokens=st.tuples(*(st.integers(min_value=0, max_value=10**9) for _ in range(5))),
)
def test_the_cost_is_the_exact_decimal_sum_rounded_half_even(
    prices: tuple[Decimal | None, ...], tokens: tuple[int, ...]
) -> None:
    # The book sums whole units of each price's smallest digit; the reference does the
    # arithmetic in Decimal at 60 digits. They must agree to the last place.
    names = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
    pricing = PricingConfig(**{f"{n}_per_1k": p for n, p in zip(names, prices, strict=True)})
    book = PriceBook([ModelConfig(name="m", bedrock_id="custom.model-v1:0", pricing=pricing)])
    i, o, cr, cw5, cw1 = tokens
    got = book.cost(
        model="m",
        bedrock_model_id="custom.model-v1:0",
        input_tokens=i,
        output_tokens=o,
        cache_read_tokens=cr,
        cache_write_tokens=cw5 + cw1,
        cache_write_1h_tokens=cw1,
    )
    if any(count and price is None for count, price in zip(tokens, prices, strict=True)):
        assert got is None
        return
    with localcontext(Context(prec=60)):
        total = sum((c * p for c, p in zip(tokens, prices, strict=True) if c), Decimal(0))
        expected = (total / 1000).quantize(Decimal("1e-10"), rounding=ROUND_HALF_EVEN)
    assert got == expected and got is not None
    assert got.as_tuple().exponent == -10
