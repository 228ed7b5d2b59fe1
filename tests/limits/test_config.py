"""The `limits:` section of the config file."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, LimitsConfig, parse_config


def test_defaults_fail_open_on_a_local_store() -> None:
    limits = parse_config("", {}, source="t.yaml").limits
    assert limits == LimitsConfig(
        store="memory", fail_open=True, redis_timeout_s=0.25, redis_prefix="bgw:", spend_cache_s=5
    )


def test_every_field_is_read_and_interpolated() -> None:
    text = (
        "limits:\n"
        "  store: ${LIMITS_STORE}\n"
        "  fail_open: false\n"
        "  redis_timeout_s: 0.1\n"
        "  redis_prefix: 'prod-gw:'\n"
        "  spend_cache_s: 0\n"
    )
    limits = parse_config(text, {"LIMITS_STORE": "rediss://r:6380/2"}, source="t.yaml").limits
    assert limits.store == "rediss://r:6380/2"
    assert limits.fail_open is False
    assert limits.redis_timeout_s == 0.1
    assert limits.redis_prefix == "prod-gw:"
    assert limits.spend_cache_s == 0


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ("store: postgresql://db/x", "store must be `memory` or a redis://"),
        ("store: Memory", "store must be `memory`"),
        ("store: redis", "store must be `memory`"),
        ("redis_timeout_s: 0", "limits.redis_timeout_s"),
        ("spend_cache_s: -1", "limits.spend_cache_s"),
        ("fail_closed: true", "limits.fail_closed: unknown key"),
    ],
)
def test_bad_settings_fail_at_load(section: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=r"t\.yaml") as caught:
        parse_config(f"limits:\n  {section}\n", {}, source="t.yaml")
    assert complaint in str(caught.value)
