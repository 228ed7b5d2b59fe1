"""The config file: interpolation, validation errors naming file and key path, defaults."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from gateway.config import (
    ConfigError,
    default_config,
    interpolate,
    load_config,
    masked_config,
    parse_config,
    resolve_config_path,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("x-${A}-y", {"A": "1"}, "x-1-y"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-}", {}, ""),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("no variables", {}, "no variables"),
        ("$A stays", {"A": "1"}, "$A stays"),
    ],
)
def test_interpolate(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_interpolate_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError, match="B, C"):
        interpolate("${C} ${B} ${C}", {})


def test_variables_in_comments_are_ignored_and_values_cannot_inject_yaml() -> None:
    text = "# ${NOT_SET}\nserver:\n  host: ${HOST}\n"
    config = parse_config(text, {"HOST": "a\nport: 1"}, source="c.yaml")
    assert config.server.host == "a\nport: 1"
    assert config.server.port == 8080


def test_interpolated_numbers_are_coerced() -> None:
    config = parse_config("server:\n  port: ${PORT}\n", {"PORT": "9000"}, source="c.yaml")
    assert config.server.port == 9000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "server:\n  max_conections: 3\n",
            "c.yaml: invalid config\n  server.max_conections: unknown key",
        ),
        ("models:\n  - name: a\n    bedrock_id: b\n    kind: chatt\n", "models[0].kind"),
        (
            "server:\n  port: ${PORT}\n",
            "c.yaml: server.port: environment variable(s) not set: PORT",
        ),
        (
            "auth:\n  keys:\n    - id: k\n",
            "auth.keys[0]: Value error, give exactly one of key_sha256 or key",
        ),
        ("auth:\n  keys:\n    - id: k\n      key_sha256: nothex\n", "auth.keys[0].key_sha256"),
        ("[1, 2]\n", "c.yaml: the top level must be a mapping"),
        ("server: [\n", "c.yaml: not valid YAML"),
        (
            "models:\n  - {name: a, bedrock_id: x}\n  - {name: b, bedrock_id: y, aliases: [a]}\n",
            "model name 'a' is used by both 'a' and 'b'",
        ),
        ("models:\n  - {name: a, bedrock_id: x, fallbacks: [zz]}\n", "unknown fallback 'zz'"),
        ("usage:\n  flush_interval_ms: 0\n", "usage.flush_interval_ms"),
    ],
)
def test_errors_name_the_file_and_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, {}, source="c.yaml")
    assert message in str(info.value)


def test_empty_file_is_all_defaults() -> None:
    config = parse_config("", {}, source="c.yaml")
    assert config.server.port == 8080
    assert config.usage.store == "sqlite:///gateway-usage.db"
    # Issue 19, item 17: no `models:` means the embedded catalogue, as with no file at all.
    assert config.models == default_config().models


def test_an_explicit_empty_model_list_stays_empty() -> None:
    assert parse_config("models: []\n", {}, source="c.yaml").models == []


def test_a_file_without_models_but_with_keys_serves_the_catalogue() -> None:
    config = parse_config(
        "auth:\n  keys:\n    - {id: a, key_sha256: '" + "ab" * 32 + "'}\n", {}, source="c"
    )
    assert {m.name for m in config.models} >= {"claude-3-5-sonnet", "nova-micro"}


def test_no_file_means_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path(None, {}) is None
    config = load_config(None, {})
    assert config == default_config()
    assert {m.name for m in config.models} >= {"claude-3-5-sonnet", "titan-embed-text-v2"}


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("{}")
    (tmp_path / "env.yaml").write_text("{}")
    (tmp_path / "flag.yaml").write_text("{}")
    assert resolve_config_path(None, {}) == Path("config.yaml")
    assert resolve_config_path(None, {"GATEWAY_CONFIG": "env.yaml"}) == Path("env.yaml")
    assert resolve_config_path("flag.yaml", {"GATEWAY_CONFIG": "env.yaml"}) == Path("flag.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        resolve_config_path("missing.yaml", {})


def test_plaintext_keys_are_hashed_and_masked() -> None:
    config = parse_config(
        "auth:\n  keys:\n    - {id: a, key: '${K}'}\nusage:\n  store: postgresql://u:pw@db/x\n",
        {"K": "secret-value-of-at-least-32-characters"},
        source="c.yaml",
    )
    key = config.auth.keys[0]
    assert key.digest == hashlib.sha256(b"secret-value-of-at-least-32-characters").hexdigest()
    masked = masked_config(config)
    assert masked["auth"]["keys"][0]["key"] == "***"
    assert "secret-value" not in repr(masked)
    assert masked["usage"]["store"] == "postgresql://u:***@db/x"
    assert "secret-value" not in repr(config)


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.yaml", {})
    names = {m.name for m in config.models}
    assert "claude-3-5-sonnet" in names
    # Quick start step 3 pastes a `keys new --id app1` entry into a copy: no clash.
    assert [key.id for key in config.auth.keys] == ["example"]


@pytest.mark.parametrize("value", ["gateway", "aiohttp"])
def test_the_removed_http_client_key_is_refused_with_what_to_do(value: str) -> None:
    text = f"bedrock:\n  region: us-east-1\n  http_client: {value}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, {}, source="c.yaml")
    message = str(info.value)
    assert message.startswith("c.yaml: invalid config")
    assert "bedrock.http_client was removed" in message
    assert "aiohttp session" in message and "docs/operations/upgrading.md" in message


def test_the_2026_model_keys_load() -> None:
    text = """
models:
  - name: claude-opus-4-7
    bedrock_id: global.anthropic.claude-opus-4-7
    reasoning: {supported: true, mode: adaptive}
    structured_output: native
    service_tiers: [default, flex, priority]
    pricing:
      input_per_1k: 0.005
      cache_write_1h_per_1k: 0.01
      tiers: {flex: {input_per_1k: 0.0025}, priority: {output_per_1k: 0.04375}}
bedrock: {request_metadata: true}
"""
    config = parse_config(text, {}, source="c.yaml")
    (model,) = config.models
    assert model.reasoning.mode == "adaptive"
    assert model.structured_output == "native"
    assert model.service_tiers == ["default", "flex", "priority"]
    assert model.pricing is not None
    assert str(model.pricing.cache_write_1h_per_1k) == "0.01"
    assert str(model.pricing.tiers["flex"].input_per_1k) == "0.0025"
    assert config.bedrock.request_metadata is True


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("service_tiers: [turbo]", "models[0].service_tiers[0]"),
        ("structured_output: grammar", "models[0].structured_output"),
        ("reasoning: {mode: vibes}", "models[0].reasoning.mode"),
        ("pricing: {tiers: {reserved: {input_per_1k: 1}}}", "models[0].pricing.tiers"),
    ],
)
def test_bad_2026_model_keys_are_refused_by_path(line: str, where: str) -> None:
    text = f"models:\n  - name: m\n    bedrock_id: x.y\n    {line}\n"
    with pytest.raises(ConfigError, match=re.escape(where)):
        parse_config(text, {}, source="c.yaml")
