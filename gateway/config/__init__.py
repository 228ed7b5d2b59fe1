"""The config file: pydantic models of every key in CONTRACT.md, and a pure loader.

`load_config(path, env)` reads nothing at import time and takes the environment as an
argument, so tests can load a config without touching `os.environ`. Unknown keys are
rejected (`extra="forbid"`): a typo such as `max_conections` must fail loudly at start,
not be ignored until the pool runs dry under load.

The models are split by part of the file (`sections`, `models`, `auth`, and `root` for the
whole file and its cross-section rules) and the loading apart (`loading`); every name is
importable from `gateway.config`.
"""

from __future__ import annotations

from gateway.config.auth import (
    MIN_PLAINTEXT_KEY_CHARS,
    AuthConfig,
    GuardrailConfig,
    GuardrailsConfig,
    KeyConfig,
    LimitsFields,
    TeamConfig,
    role_session_name,
)
from gateway.config.base import (
    ConfigError,
    PositiveFloat,
    PositiveInt,
    Price,
)
from gateway.config.loading import (
    default_config,
    default_models,
    format_validation_error,
    interpolate,
    load_config,
    masked_config,
    parse_config,
    resolve_config_path,
)
from gateway.config.models import (
    Effort,
    ModelConfig,
    PricingConfig,
    ReasoningConfig,
    Tier,
    TierPricing,
)
from gateway.config.root import (
    GatewayConfig,
)
from gateway.config.sections import (
    AnthropicConfig,
    BedrockConfig,
    CorsConfig,
    DiscoverConfig,
    ImagesConfig,
    LimitsConfig,
    LoggingConfig,
    MetricsConfig,
    ResponsesConfig,
    RetriesConfig,
    ServerConfig,
    UsageConfig,
)

__all__ = [
    "MIN_PLAINTEXT_KEY_CHARS",
    "AnthropicConfig",
    "AuthConfig",
    "BedrockConfig",
    "ConfigError",
    "CorsConfig",
    "DiscoverConfig",
    "Effort",
    "GatewayConfig",
    "GuardrailConfig",
    "GuardrailsConfig",
    "ImagesConfig",
    "KeyConfig",
    "LimitsConfig",
    "LimitsFields",
    "LoggingConfig",
    "MetricsConfig",
    "ModelConfig",
    "PositiveFloat",
    "PositiveInt",
    "Price",
    "PricingConfig",
    "ReasoningConfig",
    "ResponsesConfig",
    "RetriesConfig",
    "ServerConfig",
    "TeamConfig",
    "Tier",
    "TierPricing",
    "UsageConfig",
    "default_config",
    "default_models",
    "format_validation_error",
    "interpolate",
    "load_config",
    "masked_config",
    "parse_config",
    "resolve_config_path",
    "role_session_name",
]
