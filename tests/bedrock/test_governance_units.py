"""The pieces of regions and team roles that need no network: config rules, the region
breaker, candidate order, session names and the role credentials' refresh."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gateway.bedrock.breaker import RegionBreaker
from gateway.bedrock.catalog import ModelCatalog
from gateway.bedrock.roles import RoleCredentials
from gateway.config import (
    ConfigError,
    GatewayConfig,
    ModelConfig,
    TeamConfig,
    masked_config,
    parse_config,
    role_session_name,
)

ROLE = "arn:aws:iam::111122223333:role/bedrock-search"


def _models(*models: dict[str, Any]) -> list[ModelConfig]:
    return [ModelConfig.model_validate(m) for m in models]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "models: [{name: a, bedrock_id: x, region: us-east-1, regions: [us-west-2]}]",
            "either region or regions",
        ),
        ("models: [{name: a, bedrock_id: x, regions: [us-east-1, us-east-1]}]", "twice"),
        ("models: [{name: a, bedrock_id: x, regions: ['']}]", "at least 1 character"),
        ("auth: {teams: {t: {role_arn: 'not-an-arn'}}}", "role_arn"),
        ("auth: {teams: {t: {role_arn: " + ROLE + ", role_duration_s: 60}}}", "900"),
        ("bedrock: {region_cooldown_s: -1}", "region_cooldown_s"),
        ("bedrock: {discover: {enabled: true, interval_s: 0}}", "interval_s"),
        ("bedrock: {discover: {enable: true}}", "unknown key"),
    ],
)
def test_bad_governance_config_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(text, {}, source="config.yaml")


def test_check_config_never_shows_the_external_id() -> None:
    config = GatewayConfig.model_validate(
        {"auth": {"teams": {"search": {"role_arn": ROLE, "external_id": "s3cr3t-ext"}}}}
    )
    shown = masked_config(config)
    assert shown["auth"]["teams"]["search"]["external_id"] == "***"
    assert shown["auth"]["teams"]["search"]["role_arn"] == ROLE
    assert "s3cr3t-ext" not in repr(shown)


@pytest.mark.parametrize(
    ("team", "name"),
    [
        ("search", "bedrock-gateway-search"),
        ("data science/EU", "bedrock-gateway-data-science-EU"),
        ("équipe", "bedrock-gateway--quipe"),
        ("x" * 80, ("bedrock-gateway-" + "x" * 80)[:64]),
    ],
)
def test_role_session_name_is_what_sts_accepts(team: str, name: str) -> None:
    assert role_session_name(team) == name


def test_candidates_are_each_region_then_each_fallback() -> None:
    catalog = ModelCatalog(
        _models(
            {"name": "a", "bedrock_id": "A", "regions": ["r1", "r2"], "fallbacks": ["b"]},
            {"name": "b", "bedrock_id": "B", "regions": ["r3", "r4"]},
            {"name": "c", "bedrock_id": "C", "region": "r5"},
        ),
        allow_unlisted=False,
    )
    chain = catalog.candidates(catalog.resolve("a"))
    assert [(c.bedrock_id, c.region) for c in chain] == [
        ("A", "r1"),
        ("A", "r2"),
        ("B", "r3"),
        ("B", "r4"),
    ]
    assert [c.multi_region for c in chain] == [True] * 4
    (single,) = catalog.candidates(catalog.resolve("c"))
    assert (single.region, single.multi_region) == ("r5", False)
    assert catalog.regions() == {"r1", "r2", "r3", "r4", "r5"}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_three_throttles_and_closes_after_the_cooldown() -> None:
    catalog = ModelCatalog(
        _models({"name": "a", "bedrock_id": "A", "regions": ["r1", "r2"]}), allow_unlisted=False
    )
    first, second = catalog.candidates(catalog.resolve("a"))
    clock = _Clock()
    breaker = RegionBreaker(30, clock=clock)
    for _ in range(2):
        breaker.failed(first, "ThrottlingException")
    breaker.succeeded(first)  # an answer in between: not "in a row"
    breaker.failed(first, "ThrottlingException")
    breaker.failed(first, "ValidationException")  # not a throttle: the streak ends
    assert list(breaker.available([first, second])) == [first, second]
    for _ in range(3):
        breaker.failed(first, "ThrottlingException")
    assert list(breaker.available([first, second])) == [second]
    clock.now += 29
    assert breaker.cooling(first)
    clock.now += 2
    assert list(breaker.available([first, second])) == [first, second]


def test_when_every_region_is_cooling_all_are_tried() -> None:
    catalog = ModelCatalog(
        _models({"name": "a", "bedrock_id": "A", "regions": ["r1", "r2"]}), allow_unlisted=False
    )
    chain = catalog.candidates(catalog.resolve("a"))
    breaker = RegionBreaker(30, clock=_Clock())
    for candidate in chain:
        for _ in range(3):
            breaker.failed(candidate, "ThrottlingException")
    assert list(breaker.available(chain)) == list(chain)


def test_a_single_region_model_is_never_skipped() -> None:
    catalog = ModelCatalog(_models({"name": "a", "bedrock_id": "A"}), allow_unlisted=False)
    chain = catalog.candidates(catalog.resolve("a"))
    breaker = RegionBreaker(30, clock=_Clock())
    for _ in range(5):
        breaker.failed(chain[0], "ThrottlingException")
    assert list(breaker.available(chain)) == list(chain)
    assert not catalog.multi_region


class _Sts:
    """An STS client double at the edge we do not own: counts calls, may refuse tags."""

    def __init__(self, *, refuse_tags: bool = False, lifetime_s: int = 3600) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refuse_tags = refuse_tags
        self.lifetime_s = lifetime_s

    async def assume_role(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.refuse_tags and "Tags" in request:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not authorized: sts:TagSession"}},
                "AssumeRole",
            )
        number = len(self.requests)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIAEXAMPLE{number:05d}",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": datetime.now(UTC) + timedelta(seconds=self.lifetime_s),
            }
        }


def test_role_credentials_are_refreshed_before_they_expire() -> None:
    async def run() -> list[str]:
        sts = _Sts(lifetime_s=900)
        role = TeamConfig(role_arn=ROLE, role_duration_s=900)
        credentials = RoleCredentials("search", role, sts).refreshable()
        first = (await credentials.get_frozen_credentials()).access_key
        again = (await credentials.get_frozen_credentials()).access_key
        # Pretend 12 minutes went by: inside the last quarter of a 15-minute session.
        credentials._time_fetcher = lambda: datetime.now(UTC) + timedelta(minutes=12)
        later = (await credentials.get_frozen_credentials()).access_key
        return [first, again, later]

    keys = asyncio.run(run())
    assert keys == ["ASIAEXAMPLE00001", "ASIAEXAMPLE00001", "ASIAEXAMPLE00002"]


def test_a_refused_session_tag_is_dropped_once(caplog: pytest.LogCaptureFixture) -> None:
    async def run(sts: _Sts) -> None:
        fetcher = RoleCredentials("search", TeamConfig(role_arn=ROLE, external_id="ext-1"), sts)
        await fetcher.fetch()
        await fetcher.fetch()

    sts = _Sts(refuse_tags=True)
    asyncio.run(run(sts))
    assert ["Tags" in r for r in sts.requests] == [True, False, False]
    assert all(r["ExternalId"] == "ext-1" for r in sts.requests)
    assert all(r["RoleSessionName"] == "bedrock-gateway-search" for r in sts.requests)
    assert caplog.text.count("refused the session tag") == 1
    assert "secret" not in caplog.text


def _gateway(tmp_path: Any, text: str) -> Any:
    from gateway.config import load_config
    from gateway.pipeline.runtime import Gateway, Runtime

    path = tmp_path / "config.yaml"
    path.write_text(text)
    config = load_config(path, {})
    unused: Any = object()
    return Gateway(
        Runtime.build(config),
        bedrock=unused,
        recorder=unused,
        metrics=unused,
        limiter=unused,
        images=unused,
        limiter_factory=lambda config: unused,
        config_path=path,
    )


def test_reload_says_new_regions_and_roles_need_a_restart(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = _gateway(
        tmp_path, "bedrock: {region: us-east-1}\nmodels: [{name: a, bedrock_id: A}]\n"
    )
    assert gateway.breaker is None  # nothing lists several regions: no breaker at all
    (tmp_path / "config.yaml").write_text(
        "bedrock: {region: us-east-1}\n"
        "models: [{name: a, bedrock_id: A, regions: [us-east-1, eu-west-1]}]\n"
        "auth: {teams: {t: {role_arn: '" + ROLE + "'}}}\n"
    )
    assert gateway.reload({})
    assert "region(s) eu-west-1, which have no Bedrock client" in caplog.text
    assert "role_arn, external_id and role_duration_s take effect only after a restart" in (
        caplog.text
    )
    assert gateway.breaker is not None
