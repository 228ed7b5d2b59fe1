"""The config file's sections besides models and auth: server, bedrock, images, limits, usage,
responses, metrics, logging, anthropic. Each key is named as in CONTRACT.md; unknown keys
are refused (`Strict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from gateway.config.base import PositiveFloat, PositiveInt, Strict
from gateway.translate.anthropic_messages.betas import DEFAULT_BETAS


class CorsConfig(Strict):
    # [] sends no CORS headers at all; ["*"] or exact origins ("https://app.example.com").
    allow_origins: list[str] = []
    allow_headers: list[str] = [
        "authorization",
        "content-type",
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "x-request-id",
    ]
    max_age_s: Annotated[int, Field(ge=0, le=86400)] = 600


class ServerConfig(Strict):
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: PositiveInt = 20_000_000
    graceful_shutdown_s: Annotated[float, Field(ge=0)] = 30
    max_concurrent_requests: PositiveInt = 1000
    cors: CorsConfig = CorsConfig()
    # A client that has not sent its request headers by then is dropped...
    header_timeout_s: PositiveFloat = 10
    # ...and one that has not sent its whole body (408).
    body_timeout_s: PositiveFloat = 30
    # Not in the contract: a client that reads nothing of its response (a stream it
    # stopped reading) for this long is dropped, and Bedrock's stream with it.
    # (The body and write limits are kept on a 25 ms tick, gateway/server/deadlines.py:
    # one may be passed by up to that much before it is enforced.)
    write_timeout_s: PositiveFloat = 60


class RetriesConfig(Strict):
    mode: Literal["legacy", "standard", "adaptive"] = "adaptive"
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3


class DiscoverConfig(Strict):
    """`bedrock.discover`: the model catalogue read from the account (opt-in)."""

    enabled: bool = False
    interval_s: PositiveFloat = 600


class BedrockConfig(Strict):
    region: str | None = None
    endpoint_url: str | None = None
    # Per-region runtime endpoint (VPC endpoints, tests): wins over `endpoint_url` there.
    endpoint_urls: dict[str, str] = Field(default_factory=dict)
    # STS endpoint for the teams' `role_arn` (VPC endpoints, tests); None: as boto3 finds it.
    sts_endpoint_url: str | None = None
    # After 3 throttles in a row, a (model, region) is skipped this long (circuit breaker).
    region_cooldown_s: Annotated[float, Field(ge=0)] = 30
    discover: DiscoverConfig = DiscoverConfig()
    max_connections: PositiveInt = 200
    connect_timeout_s: PositiveFloat = 5
    read_timeout_s: PositiveFloat = 300
    retries: RetriesConfig = RetriesConfig()
    # Stamp key_id, team and user into Converse `requestMetadata`, so that Bedrock's own
    # invocation logs attribute calls that all share the gateway's AWS role.
    request_metadata: bool = False

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        # Refused by name rather than by the generic "unknown key": an operator upgrading
        # must learn that the switch is gone and what replaced it, not hunt for a typo.
        if isinstance(data, Mapping) and "http_client" in data:
            raise ValueError(
                "bedrock.http_client was removed: the gateway always uses aiobotocore's "
                "aiohttp session now (tuned by max_connections, connect_timeout_s and "
                "read_timeout_s). Delete the key; see docs/operations/upgrading.md."
            )
        return data


class ImagesConfig(Strict):
    fetch_remote: bool = True
    allowed_hosts: list[str] = Field(default_factory=list)
    max_bytes: PositiveInt = 3_750_000
    timeout_s: PositiveFloat = 10


class LimitsConfig(Strict):
    # `memory` (this process only) or `redis://` / `rediss://` (shared by a fleet).
    store: str = "memory"
    # When Redis or the usage ledger cannot be read: true admits the request unchecked (a
    # limits outage must not become a gateway outage); false refuses it with 503.
    fail_open: bool = True
    # Longest wait for Redis on one admission, connecting included; past it, `fail_open`.
    redis_timeout_s: Annotated[float, Field(gt=0, le=10)] = 0.25
    # Prepended to every Redis key, so that several deployments can share one server.
    redis_prefix: str = "bgw:"
    # How long a key's or team's month-to-date spend, read from the usage store for
    # budgets, is reused before it is read again. 0 reads it on every request.
    spend_cache_s: Annotated[float, Field(ge=0, le=300)] = 5
    # A key or team with a monthly budget may not call a model without a known input and
    # output price (its calls would cost nothing against the budget): 403. true lets such
    # calls through, unbudgeted.
    allow_unpriced_models: bool = False

    @model_validator(mode="after")
    def _known_store(self) -> LimitsConfig:
        scheme, sep, _ = self.store.partition("://")
        if self.store != "memory" and not (sep and scheme in ("redis", "rediss")):
            raise ValueError("store must be `memory` or a redis:// or rediss:// URL")
        return self


class UsageConfig(Strict):
    store: str = "sqlite:///gateway-usage.db"
    flush_interval_ms: PositiveInt = 200
    # Records per write transaction; a full batch is written without waiting for the tick.
    batch_size: PositiveInt = 500
    # Most records held in memory while the store is down; past it they are lost (logged).
    max_buffer: PositiveInt = 100_000
    # Where records go while the store is down (JSON lines, replayed when it is back and at
    # the next start); each worker process claims its own `<path>`, `<path>.1`, ... null: none.
    spill_path: str | None = "gateway-usage.spill.jsonl"
    # Extra fraction charged on cross-region inference profiles (0.1 = +10%). AWS bills them
    # at the source region's price, so 0 unless an agreement says otherwise.
    cross_region_surcharge: Annotated[Decimal, Field(ge=0, le=10)] = Decimal(0)

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> UsageConfig:
        if self.max_buffer < self.batch_size:
            raise ValueError("max_buffer must be at least batch_size")
        return self


class ResponsesConfig(Strict):
    # Keep responses for `previous_response_id` and `GET /v1/responses/{id}` unless the
    # request says `store: false` (the Responses API's own default is to store).
    store: bool = True
    retention_days: PositiveInt = 30


class MetricsConfig(Strict):
    enabled: bool = True
    path: Annotated[str, Field(pattern=r"^/")] = "/metrics"


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["json", "text"] = "json"
    log_prompts: bool = False


def _default_betas_list() -> list[str]:
    return list(DEFAULT_BETAS)


class AnthropicConfig(Strict):
    """`/v1/messages`: the `anthropic-beta` values forwarded to Bedrock (others dropped)."""

    betas: list[str] = Field(default_factory=_default_betas_list)
