"""The config file: pydantic models of every key in CONTRACT.md, and a pure loader.

`load_config(path, env)` reads nothing at import time and takes the environment as an
argument, so tests can load a config without touching `os.environ`. Unknown keys are
rejected (`extra="forbid"`): a typo such as `max_conections` must fail loudly at start,
not be ignored until the pool runs dry under load.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from gateway.translate.anthropic_messages.betas import DEFAULT_BETAS

__all__ = [
    "AnthropicConfig",
    "ConfigError",
    "GatewayConfig",
    "GuardrailConfig",
    "GuardrailsConfig",
    "KeyConfig",
    "ModelConfig",
    "TeamConfig",
    "default_config",
    "interpolate",
    "load_config",
    "masked_config",
    "resolve_config_path",
]


class ConfigError(Exception):
    """The config file cannot be used; the message names the file and the key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Price = Annotated[Decimal, Field(ge=0)]


class CorsConfig(_Strict):
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


class ServerConfig(_Strict):
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
    write_timeout_s: PositiveFloat = 60


class RetriesConfig(_Strict):
    mode: Literal["legacy", "standard", "adaptive"] = "adaptive"
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3


class BedrockConfig(_Strict):
    region: str | None = None
    endpoint_url: str | None = None
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


# Bedrock's service tiers a model can be configured to accept (Converse `serviceTier`).
Tier = Literal["default", "flex", "priority"]


class TierPricing(_Strict):
    """One tier's prices, USD per 1,000 tokens; unset fields fall back to the model's."""

    input_per_1k: Price | None = None
    output_per_1k: Price | None = None
    cache_read_per_1k: Price | None = None
    cache_write_per_1k: Price | None = None
    cache_write_1h_per_1k: Price | None = None


class PricingConfig(_Strict):
    """USD per 1,000 tokens. Decimal, so that summing millions of records does not drift."""

    input_per_1k: Price | None = None
    output_per_1k: Price | None = None
    cache_read_per_1k: Price | None = None
    cache_write_per_1k: Price | None = None  # 5-minute cache writes
    cache_write_1h_per_1k: Price | None = None  # 1-hour cache writes
    # Prices of the flex and priority service tiers; a field left out keeps the default price.
    tiers: dict[Tier, TierPricing] = Field(default_factory=dict)


Effort = Literal["low", "medium", "high"]


def _default_budgets() -> dict[Effort, int]:
    return {"low": 1024, "medium": 4096, "high": 16384}


class ReasoningConfig(_Strict):
    supported: bool = False
    # budget: thinking with `budget_tokens` from `budgets`; adaptive: the model decides how
    # much to think, `reasoning_effort` becomes Converse `outputConfig.effort` (Claude Opus
    # 4.7 and later refuse budget_tokens).
    mode: Literal["budget", "adaptive"] = "budget"
    budgets: dict[Effort, PositiveInt] = Field(default_factory=_default_budgets)


def _default_tiers() -> list[Tier]:
    return ["default"]


class ModelConfig(_Strict):
    name: Annotated[str, Field(min_length=1)]
    bedrock_id: Annotated[str, Field(min_length=1)]
    aliases: list[str] = Field(default_factory=list)
    region: str | None = None
    kind: Literal["chat", "embedding"] = "chat"
    pricing: PricingConfig | None = None
    fallbacks: list[str] = Field(default_factory=list)
    reasoning: ReasoningConfig = ReasoningConfig()
    auto_cache_system: bool = False
    ttft_timeout_s: PositiveFloat | None = None
    # native: Converse outputConfig.textFormat json_schema (and toolSpec.strict);
    # tool: a forced tool stands for response_format (works on every tool-capable model).
    structured_output: Literal["native", "tool"] = "tool"
    # The tiers this model accepts; a request for another is a 400 naming service_tier.
    service_tiers: list[Tier] = Field(default_factory=_default_tiers)


class ImagesConfig(_Strict):
    fetch_remote: bool = True
    allowed_hosts: list[str] = Field(default_factory=list)
    max_bytes: PositiveInt = 3_750_000
    timeout_s: PositiveFloat = 10


class LimitsFields(_Strict):
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    budget_usd_monthly: Price | None = None


class GuardrailConfig(_Strict):
    """A Bedrock guardrail applied to every chat call it covers (see `guardrails`).

    `id` and `version` follow the patterns of Bedrock's `GuardrailConfiguration`: the
    identifier (`[a-z0-9]+`) or its ARN, and a version number or DRAFT.
    """

    id: Annotated[
        str,
        Field(
            max_length=2048,
            pattern=r"^(?:[a-z0-9]+|arn:aws(?:-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}"
            r":guardrail/[a-z0-9]+)$",
        ),
    ]
    version: Annotated[str, Field(pattern=r"^(?:[1-9][0-9]{0,7}|DRAFT)$")]
    trace: Literal["off", "enabled", "enabled_full"] = "off"
    stream_processing_mode: Literal["sync", "async"] = "sync"

    @model_validator(mode="before")
    @classmethod
    def _yaml_scalars(cls, data: Any) -> Any:
        # YAML reads `version: 1` as a number and `trace: off` as false; both mean the
        # obvious string. Any other non-string (1.5, true) stays for the patterns to refuse.
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        version = data.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            data["version"] = str(version)
        if data.get("trace") is False:
            data["trace"] = "off"
        return data


class GuardrailsConfig(_Strict):
    """`guardrails`: the most specific wins, key > team > model > default."""

    default: GuardrailConfig | None = None
    models: dict[str, GuardrailConfig] = Field(default_factory=dict)  # model name or alias


# A plaintext key shorter than this is refused at start-up: `bedrock-gateway keys new` makes
# 47-character keys, and a short one is a placeholder or guessable (issue 19, item 15).
MIN_PLAINTEXT_KEY_CHARS = 32
# Values an example or a tutorial would write; a key containing one of them is refused
# whatever its length, and so is a key_sha256 of one of them.
_PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "replace-me", "placeholder", "example")
_PLACEHOLDER_KEYS = frozenset(
    {*_PLACEHOLDER_WORDS, "secret", "password", "test", "demo", "key", "api-key", "bgw-..."}
)
_PLACEHOLDER_DIGESTS = frozenset(hashlib.sha256(k.encode()).hexdigest() for k in _PLACEHOLDER_KEYS)
# `admin-<first 8 hex of the digest>` is the id given to a digest listed only in
# admin_keys_sha256; a configured key with such an id would be mistaken for one in usage.
_SYNTHETIC_ADMIN_ID = re.compile(r"admin-[0-9a-fA-F]{8}")


def _placeholder_problem(key: str) -> str | None:
    lowered = key.lower()
    if lowered in _PLACEHOLDER_KEYS or any(word in lowered for word in _PLACEHOLDER_WORDS):
        return "key is a placeholder value; make a real one with `bedrock-gateway keys new`"
    if len(key) < MIN_PLAINTEXT_KEY_CHARS:
        return (
            f"key is shorter than {MIN_PLAINTEXT_KEY_CHARS} characters; "
            "make a real one with `bedrock-gateway keys new`"
        )
    return None


class KeyConfig(LimitsFields):
    """One API key. `key_sha256` (preferred) or `key` (plaintext, normally `${ENV_VAR}`)."""

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:@-]+$")]
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    key: SecretStr | None = None
    team: str | None = None
    user: str | None = None
    models: list[str] | None = None
    disabled: bool = False
    guardrail: GuardrailConfig | None = None  # wins over the team's, the model's, the default

    @model_validator(mode="after")
    def _one_secret(self) -> KeyConfig:
        if (self.key_sha256 is None) == (self.key is None):
            raise ValueError("give exactly one of key_sha256 or key")
        if self.key is not None and not self.key.get_secret_value():
            raise ValueError("key is empty (is its environment variable set?)")
        if self.key is not None and (problem := _placeholder_problem(self.key.get_secret_value())):
            raise ValueError(problem)
        if self.key_sha256 is not None and self.key_sha256.lower() in _PLACEHOLDER_DIGESTS:
            raise ValueError("key_sha256 is the digest of a placeholder value")
        if _SYNTHETIC_ADMIN_ID.fullmatch(self.id):
            raise ValueError(
                f"key id {self.id!r} has the form admin-<8 hex> that the gateway gives to "
                "keys listed only in admin_keys_sha256; choose another id"
            )
        return self

    @property
    def digest(self) -> str:
        """The sha256 hex digest this key is looked up by."""
        if self.key_sha256 is not None:
            return self.key_sha256.lower()
        assert self.key is not None
        return hashlib.sha256(self.key.get_secret_value().encode()).hexdigest()


class TeamConfig(LimitsFields):
    """A team's shared limits, and what applies to every key of the team."""

    guardrail: GuardrailConfig | None = None  # wins over the model's and the default


class AuthConfig(_Strict):
    keys: list[KeyConfig] = Field(default_factory=list)
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    admin_keys_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]] = Field(
        default_factory=list
    )
    # How often each gateway process polls the key store's change counter: keys and teams
    # changed through the admin API or the CLI take effect everywhere within this.
    refresh_s: Annotated[float, Field(gt=0, le=300)] = 5

    @model_validator(mode="after")
    def _unique_ids(self) -> AuthConfig:
        seen: set[str] = set()
        for key in self.keys:
            if key.id in seen:
                raise ValueError(f"duplicate key id {key.id!r}")
            seen.add(key.id)
        return self


class LimitsConfig(_Strict):
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


class UsageConfig(_Strict):
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


class ResponsesConfig(_Strict):
    # Keep responses for `previous_response_id` and `GET /v1/responses/{id}` unless the
    # request says `store: false` (the Responses API's own default is to store).
    store: bool = True
    retention_days: PositiveInt = 30


class MetricsConfig(_Strict):
    enabled: bool = True
    path: Annotated[str, Field(pattern=r"^/")] = "/metrics"


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["json", "text"] = "json"
    log_prompts: bool = False


def _default_betas_list() -> list[str]:
    return list(DEFAULT_BETAS)


class AnthropicConfig(_Strict):
    """`/v1/messages`: the `anthropic-beta` values forwarded to Bedrock (others dropped)."""

    betas: list[str] = Field(default_factory=_default_betas_list)


class GatewayConfig(_Strict):
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


# The catalogue used when there is no config file at all, so that `bedrock-gateway serve`
# answers for the common models without any set-up: `default_models.yaml`, next to this
# module (data, with the source of every price, rather than a long Python literal).
_DEFAULT_MODELS_FILE = Path(__file__).with_name("default_models.yaml")


def default_models() -> list[dict[str, Any]]:
    """The embedded catalogue, as config data (`default_models.yaml`)."""
    models: list[dict[str, Any]] = yaml.safe_load(_DEFAULT_MODELS_FILE.read_text(encoding="utf-8"))[
        "models"
    ]
    return models


def default_config() -> GatewayConfig:
    """The embedded defaults: used when no config file exists at all."""
    return GatewayConfig.model_validate({"models": default_models()})


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], *, source: str = "<config>") -> str:
    """Replace `${VAR}` and `${VAR:-default}`; an unset variable without default is an error.

    Applied to string values after YAML parsing, never to the raw text: comments stay
    inert, and a variable's value can never change the structure of the document. Values
    are strings; pydantic turns `"8080"` into the port number where an int is expected.
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    result = _VAR.sub(replace, text)
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise ConfigError(f"{source}: environment variable(s) not set: {names}")
    return result


def _interpolate_values(data: Any, env: Mapping[str, str], *, source: str, path: str) -> Any:
    if isinstance(data, str):
        return interpolate(data, env, source=f"{source}: {path}" if path else source)
    if isinstance(data, dict):
        return {
            key: _interpolate_values(
                value, env, source=source, path=f"{path}.{key}" if path else str(key)
            )
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [
            _interpolate_values(value, env, source=source, path=f"{path}[{i}]")
            for i, value in enumerate(data)
        ]
    return data


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "<root>"


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        # Pydantic appends the union member or validator name to loc; keep the user's keys.
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {_key_path(loc)}: {message}")
    return "\n".join(lines)


def parse_config(text: str, env: Mapping[str, str], *, source: str) -> GatewayConfig:
    """Validate a YAML document (after interpolation) into a GatewayConfig."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys")
    data = _interpolate_values(data, env, source=source, path="")
    if "models" not in data:
        # A file that does not mention `models` gets the embedded catalogue, as no file at
        # all does; it used to get no models, and every call a silent 404 (issue 19, item
        # 17). `models: []` still means none (the start-up log says so).
        data = {**data, "models": default_models()}
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """`--config`, then `$GATEWAY_CONFIG`, then `./config.yaml`; None means embedded defaults.

    A path that was asked for explicitly must exist; only the implicit `./config.yaml`
    may be absent.
    """
    for candidate in (explicit, env.get("GATEWAY_CONFIG")):
        if candidate:
            path = Path(candidate)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            return path
    implicit = Path("config.yaml")
    return implicit if implicit.is_file() else None


def load_config(path: Path | None, env: Mapping[str, str]) -> GatewayConfig:
    """Read and validate a config file; `None` gives the embedded defaults."""
    if path is None:
        return default_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, env, source=str(path))


def masked_config(config: GatewayConfig) -> dict[str, Any]:
    """The effective config as plain data, with plaintext keys and DSN passwords hidden."""
    data = config.model_dump(mode="json")
    for key in data["auth"]["keys"]:
        if key.get("key") is not None:
            key["key"] = "***"
    for section in ("usage", "limits"):
        data[section]["store"] = _mask_dsn(data[section]["store"])
    return data


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)@")
_QUERY_SECRET = re.compile(r"([?&;][^=&#]*pass[^=&#]*=)[^&#]*", re.IGNORECASE)


def _mask_dsn(dsn: str) -> str:
    """Hide every password form: `user:pw@`, `:pw@` (Redis), `?password=` and a pw with `@`.

    The user info runs to the *last* `@` (greedy): a password may hold an unencoded `@`,
    and masking a little too much is harmless where showing a little of it is not.
    """

    def userinfo(match: re.Match[str]) -> str:
        user, sep, _ = match.group(2).partition(":")
        if not sep and match.group(1).lower().startswith("redis"):
            return f"{match.group(1)}***@"  # redis://secret@host: the lone part is the password
        return f"{match.group(1)}{user}{sep}{'***' if sep else ''}@"

    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(userinfo, dsn, count=1))
