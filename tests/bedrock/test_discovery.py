"""`catalogue()`: the account's listings in, the models to offer out (no AWS needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gateway.bedrock.discovery as discovery_module
from gateway.bedrock.catalog import ModelCatalog
from gateway.bedrock.discovery import Discovery, Listing, catalogue, clean_alias
from gateway.config import ModelConfig

SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def _summary(model_id: str, *, inference: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "modelId": model_id,
        "inputModalities": extra.pop("inputs", ["TEXT"]),
        "outputModalities": extra.pop("outputs", ["TEXT"]),
        "responseStreamingSupported": extra.pop("streaming", True),
        "inferenceTypesSupported": inference,
    }


def _profile(profile_id: str, model_id: str, region: str, kind: str = "SYSTEM_DEFINED") -> dict:
    return {
        "inferenceProfileId": profile_id,
        "inferenceProfileArn": f"arn:aws:bedrock:{region}:123456789012:inference-profile/{profile_id}",
        "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}"}],
        "status": "ACTIVE",
        "type": kind,
    }


@pytest.mark.parametrize(
    ("model_id", "alias"),
    [
        (SONNET, "claude-sonnet-4-5"),
        ("amazon.nova-micro-v1:0", "nova-micro"),
        ("amazon.titan-embed-text-v2:0", "titan-embed-text-v2"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0:200k", "claude-3-5-sonnet"),
        ("meta.llama3-1-70b-instruct-v1:0", "llama3-1-70b-instruct"),
        ("openai.gpt-oss-120b-1:0", "gpt-oss-120b-1"),
    ],
)
def test_clean_alias(model_id: str, alias: str) -> None:
    assert clean_alias(model_id) == alias


def test_a_profile_only_model_is_offered_under_its_profiles() -> None:
    listing = Listing(
        "eu-west-1",
        [_summary(SONNET, inference=["INFERENCE_PROFILE"], inputs=["TEXT", "IMAGE"])],
        [
            _profile(f"global.{SONNET}", SONNET, "eu-west-1"),
            _profile(f"eu.{SONNET}", SONNET, "eu-west-1"),
        ],
    )
    found = {m.config.name: m for m in catalogue([listing])}
    assert set(found) == {f"global.{SONNET}", f"eu.{SONNET}"}
    # The alias goes to the region's own geography before `global.`.
    assert found[f"eu.{SONNET}"].config.aliases == ["claude-sonnet-4-5"]
    assert found[f"global.{SONNET}"].config.aliases == []
    assert found[f"eu.{SONNET}"].capabilities == {
        "streaming": True,
        "images": True,
        "tools": None,
        "documents": None,
        "reasoning": None,
    }


def test_on_demand_ids_kinds_and_skipped_models() -> None:
    listing = Listing(
        "us-east-1",
        [
            _summary("amazon.nova-micro-v1:0", inference=["ON_DEMAND", "INFERENCE_PROFILE"]),
            _summary(
                "amazon.titan-embed-text-v2:0", inference=["ON_DEMAND"], outputs=["EMBEDDING"]
            ),
            _summary("stability.sd3-5-large-v1:0", inference=["ON_DEMAND"], outputs=["IMAGE"]),
            _summary("acme.provisioned-only-v1:0", inference=["PROVISIONED"]),
        ],
        [_profile("us.amazon.nova-micro-v1:0", "amazon.nova-micro-v1:0", "us-east-1")],
    )
    found = {m.config.name: m.config for m in catalogue([listing])}
    assert set(found) == {
        "amazon.nova-micro-v1:0",
        "us.amazon.nova-micro-v1:0",
        "amazon.titan-embed-text-v2:0",
    }
    # An on-demand id is what the alias means: no cross-region routing nobody asked for.
    assert found["amazon.nova-micro-v1:0"].aliases == ["nova-micro"]
    assert found["amazon.titan-embed-text-v2:0"].kind == "embedding"
    assert found["amazon.nova-micro-v1:0"].region == "us-east-1"


def test_application_profiles_are_offered_under_their_arn() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/team1"
    profile = {**_profile("team1", SONNET, "us-east-1", "APPLICATION"), "inferenceProfileArn": arn}
    listing = Listing("us-east-1", [_summary(SONNET, inference=["INFERENCE_PROFILE"])], [profile])
    (found,) = catalogue([listing])
    assert (found.config.name, found.config.bedrock_id) == (arn, arn)


def test_a_model_listed_in_several_regions_fails_over_between_them() -> None:
    listings = [
        Listing(region, [_summary("amazon.nova-micro-v1:0", inference=["ON_DEMAND"])], [])
        for region in ("us-east-1", "us-west-2")
    ]
    (found,) = catalogue(listings)
    assert found.config.regions == ["us-east-1", "us-west-2"]


def test_configured_entries_win_a_clash() -> None:
    listing = Listing(
        "us-east-1",
        [_summary("amazon.nova-micro-v1:0", inference=["ON_DEMAND"])],
        [],
    )
    configured = ModelConfig(name="nova-micro", bedrock_id="amazon.nova-lite-v1:0")
    catalog = ModelCatalog([configured], allow_unlisted=False, discovered=catalogue([listing]))
    assert catalog.resolve("nova-micro").bedrock_id == "amazon.nova-lite-v1:0"
    assert catalog.resolve("nova-micro").source == "config"
    discovered = catalog.resolve("amazon.nova-micro-v1:0")
    assert (discovered.source, discovered.bedrock_id) == ("discovered", "amazon.nova-micro-v1:0")


def test_an_empty_or_broken_listing_offers_nothing() -> None:
    listing = Listing(
        "us-east-1",
        [{"modelId": ""}, {"outputModalities": ["TEXT"]}],
        [{"inferenceProfileId": "us.x", "models": []}, {"models": [{"modelArn": "nope"}]}],
    )
    assert catalogue([listing]) == []


def test_a_region_that_cannot_be_listed_keeps_its_last_listing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[Any] = [
        Listing("us-east-1", [_summary("amazon.nova-micro-v1:0", inference=["ON_DEMAND"])], []),
        RuntimeError("control plane down"),
        RuntimeError("still down"),
        Listing("us-east-1", [], []),
    ]
    installed: list[list[str]] = []

    async def list_region(region: str) -> Listing:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    discovery = Discovery(
        list_region,
        ["us-east-1"],
        interval_s=60,
        install=lambda models: installed.append([m.config.name for m in models]),
    )

    async def run() -> None:
        for _ in range(4):
            await discovery.refresh()

    asyncio.run(run())
    # Installed when the offer changes only: a failed region changes nothing.
    assert installed == [["amazon.nova-micro-v1:0"], []]
    # One warning per outage, not one per refresh.
    assert caplog.text.count("cannot list region us-east-1") == 1


def test_a_hanging_control_plane_does_not_hold_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery_module, "START_TIMEOUT_S", 0.05)
    release = asyncio.Event()
    installed: list[int] = []

    async def run() -> None:
        async def list_region(region: str) -> Listing:
            await release.wait()
            return Listing(
                region, [_summary("amazon.nova-micro-v1:0", inference=["ON_DEMAND"])], []
            )

        discovery = Discovery(
            list_region, ["us-east-1"], interval_s=60, install=lambda m: installed.append(len(m))
        )
        await asyncio.wait_for(discovery.start(), 2)
        assert installed == []  # started without the listing
        release.set()
        for _ in range(100):  # bounded: the loop lists again at once
            if installed:
                break
            await asyncio.sleep(0.01)
        await discovery.aclose()

    asyncio.run(run())
    assert installed == [1]
