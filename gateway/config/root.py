"""`GatewayConfig`: the whole config file, and the rules that span its sections."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.config.auth import AuthConfig, GuardrailsConfig
from gateway.config.base import Strict
from gateway.config.models import ModelConfig
from gateway.config.sections import (
    AnthropicConfig,
    BedrockConfig,
    ImagesConfig,
    LimitsConfig,
    LoggingConfig,
    MetricsConfig,
    ResponsesConfig,
    ServerConfig,
    UsageConfig,
)


class GatewayConfig(Strict):
    server: ServerConfig = ServerConfig()
    bedrock: BedrockConfig = BedrockConfig()
    models: list[ModelConfig] = Field(default_factory=list)
    allow_unlisted_models: bool = False
    drop_unsupported_params: bool = False
    images: ImagesConfig = ImagesConfig()
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    usage: UsageConfig = UsageConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    responses: ResponsesConfig = ResponsesConfig()
    anthropic: AnthropicConfig = AnthropicConfig()
    guardrails: GuardrailsConfig = GuardrailsConfig()

    @model_validator(mode="after")
    def _model_names(self) -> GatewayConfig:
        names: dict[str, str] = {}
        for model in self.models:
            for public in (model.name, *model.aliases):
                if public in names:
                    raise ValueError(
                        f"model name {public!r} is used by both {names[public]!r} "
                        f"and {model.name!r}"
                    )
                names[public] = model.name
        for model in self.models:
            for fallback in model.fallbacks:
                if fallback not in names:
                    raise ValueError(f"model {model.name!r}: unknown fallback {fallback!r}")
        for name in self.guardrails.models:
            # A typo here would leave the model without the guardrail the operator meant.
            if name not in names:
                raise ValueError(f"guardrails.models: unknown model {name!r}")
        return self
