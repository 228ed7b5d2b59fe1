"""Guardrails in the config and the choice per request (key > team > model > default).

The config is parsed from YAML, as an operator writes it: `version: 1` and `trace: off`
are YAML scalars of other types, and must still mean what they say.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.bedrock.catalog import ModelCatalog, ResolvedModel
from gateway.config import ConfigError, LimitsFields, parse_config
from gateway.keys.index import Principal
from gateway.pipeline.guardrails import GuardrailPolicy
from gateway.pipeline.runtime import Runtime
from gateway.translate.shared.guardrails import Guardrail

_MODELS = """
models:
  - {name: sonnet, bedrock_id: us.anthropic.claude-sonnet-4-5-20250929-v1:0, aliases: [gpt-4o]}
  - {name: nova, bedrock_id: amazon.nova-micro-v1:0}
  - {name: titan, bedrock_id: amazon.titan-embed-text-v2:0, kind: embedding}
"""
_SHA = "0" * 63 + "1"


def _config(extra: str) -> Any:
    return parse_config(_MODELS + extra, {}, source="c.yaml")


def test_yaml_scalars_become_the_strings_bedrock_wants() -> None:
    config = _config(
        "guardrails:\n  default: {id: abc123, version: 1, trace: off}\n"
        "  models: {nova: {id: n1, version: DRAFT, trace: enabled_full, "
        "stream_processing_mode: async}}\n"
    )
    default = config.guardrails.default
    assert (default.id, default.version, default.trace) == ("abc123", "1", "off")
    assert default.stream_processing_mode == "sync"
    nova = config.guardrails.models["nova"]
    assert (nova.version, nova.trace, nova.stream_processing_mode) == (
        "DRAFT",
        "enabled_full",
        "async",
    )


def test_an_arn_is_an_id() -> None:
    arn = "arn:aws:bedrock:us-east-1:111122223333:guardrail/abc123"
    config = _config(f"guardrails:\n  default: {{id: '{arn}', version: '12'}}\n")
    assert config.guardrails.default.id == arn


@pytest.mark.parametrize(
    ("guardrail", "where"),
    [
        ("{id: Abc, version: 1}", "guardrails.default.id"),
        ("{id: abc-123, version: 1}", "guardrails.default.id"),
        ("{id: '', version: 1}", "guardrails.default.id"),
        ("{id: 'arn:aws:bedrock:us-east-1:12:guardrail/a', version: 1}", "guardrails.default.id"),
        ("{id: abc, version: 0}", "guardrails.default.version"),
        ("{id: abc, version: 1.5}", "guardrails.default.version"),
        ("{id: abc, version: latest}", "guardrails.default.version"),
        ("{id: abc, version: 123456789}", "guardrails.default.version"),
        ("{id: abc}", "guardrails.default.version"),
        ("{version: 1}", "guardrails.default.id"),
        ("{id: abc, version: 1, trace: on}", "guardrails.default.trace"),
        ("{id: abc, version: 1, trace: full}", "guardrails.default.trace"),
        ("{id: abc, version: 1, stream_processing_mode: fast}", "guardrails.default.stream"),
        ("{id: abc, version: 1, mode: sync}", "guardrails.default.mode: unknown key"),
    ],
)
def test_bad_guardrails_are_refused_naming_the_key(guardrail: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(f"guardrails:\n  default: {guardrail}\n")
    assert where in str(caught.value)


def test_a_guardrail_for_an_unknown_model_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"guardrails\.models: unknown model 'sonet'"):
        _config("guardrails:\n  models: {sonet: {id: abc, version: 1}}\n")


def test_keys_and_teams_take_a_guardrail() -> None:
    config = _config(
        "auth:\n  keys:\n"
        f"    - {{id: app1, key_sha256: '{_SHA}', team: search, guardrail: {{id: k1, version: 2}}}}\n"
        "  teams:\n    search: {rpm: 5, guardrail: {id: t1, version: DRAFT}}\n"
    )
    assert config.auth.keys[0].guardrail.id == "k1"
    assert config.auth.teams["search"].guardrail.version == "DRAFT"
    assert config.auth.teams["search"].rpm == 5
    with pytest.raises(ConfigError, match=r"auth\.teams\.search\.guardrail\.id"):
        _config("auth:\n  teams:\n    search: {guardrail: {id: 'BAD', version: 1}}\n")


def test_no_guardrail_anywhere_means_no_policy() -> None:
    config = _config("auth:\n  teams:\n    search: {rpm: 5}\n")
    assert GuardrailPolicy.build(config) is None
    assert Runtime.build(config).guardrails is None


def _principal(key_id: str, team: str | None, source: str = "config") -> Principal:
    return Principal(
        key_id=key_id,
        team=team,
        user=None,
        models=None,
        is_admin=False,
        limits=LimitsFields(),
        source=source,
    )


@pytest.fixture
def policy_and_catalog() -> tuple[GuardrailPolicy, ModelCatalog]:
    document: dict[str, Any] = yaml.safe_load(_MODELS)
    document["guardrails"] = {
        "default": {"id": "d", "version": 1},
        "models": {"gpt-4o": {"id": "m", "version": 1}},  # an alias names its model
    }
    document["auth"] = {
        "keys": [
            {"id": "k", "key_sha256": _SHA, "team": "t", "guardrail": {"id": "kg", "version": 1}}
        ],
        "teams": {"t": {"guardrail": {"id": "tg", "version": 1}}},
    }
    config = parse_config(yaml.safe_dump(document), {}, source="c.yaml")
    policy = GuardrailPolicy.build(config)
    assert policy is not None
    return policy, ModelCatalog(config.models, allow_unlisted=True)


@pytest.mark.parametrize(
    ("key_id", "team", "source", "model", "expected"),
    [
        ("k", "t", "config", "sonnet", "kg"),  # key > team > model
        ("other", "t", "config", "sonnet", "tg"),  # team > model
        ("k", "t", "store", "sonnet", "tg"),  # a stored key with a config key's id: no
        ("other", "x", "config", "sonnet", "m"),  # model > default
        ("other", None, "config", "gpt-4o", "m"),  # found by alias, resolved to its model
        ("other", None, "config", "nova", "d"),  # the default
        ("other", None, "config", "some.unlisted-model-v1:0", "d"),  # unlisted: default
        ("k", "t", "config", "titan", None),  # embeddings: never
    ],
)
def test_the_most_specific_guardrail_wins(
    policy_and_catalog: tuple[GuardrailPolicy, ModelCatalog],
    key_id: str,
    team: str | None,
    source: str,
    model: str,
    expected: str | None,
) -> None:
    policy, catalog = policy_and_catalog
    resolved: ResolvedModel = catalog.resolve(model)
    chosen = policy.for_request(_principal(key_id, team, source), resolved)
    assert (chosen.id if chosen else None) == expected
    if chosen is not None:
        assert chosen == Guardrail(id=expected or "", version="1")
