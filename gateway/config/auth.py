"""`auth:` (API keys, teams, admin digests) and `guardrails:`, which keys and teams name too.

Also the rules that keep example keys from working: no short or placeholder plaintext.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from gateway.config.base import PositiveInt, Price, Strict


class LimitsFields(Strict):
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    budget_usd_monthly: Price | None = None


class GuardrailConfig(Strict):
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


class GuardrailsConfig(Strict):
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


# What STS accepts as a role session name (AssumeRole `RoleSessionName`).
_SESSION_NAME_CHAR = re.compile(r"[^\w+=,.@-]", re.ASCII)


class TeamConfig(LimitsFields):
    """A team's shared limits, what applies to every key of the team, and, optionally, the
    IAM role its calls are signed with."""

    guardrail: GuardrailConfig | None = None  # wins over the model's and the default

    # Calls for this team are signed with credentials of this role (cross-account access;
    # each team's spend on its own AWS bill).
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/.+$")] | None = None
    external_id: Annotated[str, Field(min_length=2, max_length=1224)] | None = None
    # STS accepts 900 s to the role's maximum session duration (at most 12 h).
    role_duration_s: Annotated[int, Field(ge=900, le=43200)] = 3600


def role_session_name(team: str) -> str:
    """`bedrock-gateway-<team>`, cleaned to STS's `[\\w+=,.@-]{2,64}`."""
    return _SESSION_NAME_CHAR.sub("-", f"bedrock-gateway-{team}")[:64]


class AuthConfig(Strict):
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
