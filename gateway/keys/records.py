"""What the key store keeps: keys, teams and the audit log, as plain frozen values.

Kept apart from the stores so that the key index, the admin API and the CLI can use
them without importing a database driver. A stored key carries its sha256 digest only:
the plaintext is shown once, at creation or rotation, and never stored anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.schemas.admin import KEY_ID_PATTERN

__all__ = [
    "KEY_ID_PATTERN",
    "AuditEntry",
    "KeySnapshot",
    "StoredKey",
    "StoredTeam",
    "digest_of",
    "format_ts",
    "new_plaintext_key",
    "parse_ts",
]


def new_plaintext_key() -> str:
    """A fresh random API key (256 bits), the same shape `keys new` prints."""
    return "bgw-" + secrets.token_urlsafe(32)


def digest_of(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def format_ts(value: datetime) -> str:
    """RFC 3339 UTC with a `Z`, fixed width, so that text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    key_sha256: str
    team: str | None = None
    user: str | None = None
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_monthly: Decimal | None = None
    expires_at: datetime | None = None
    disabled: bool = False
    revoked_at: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def usable(self, now: datetime) -> bool:
        """Whether the key may authenticate at `now` (the index re-checks expiry)."""
        if self.disabled or self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class StoredTeam:
    name: str
    rpm: int | None = None
    tpm: int | None = None
    budget_usd_monthly: Decimal | None = None
    models: tuple[str, ...] | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts: datetime
    actor: str
    action: str  # key.create | key.update | key.rotate | key.revoke | team.put
    target: str
    changes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """Everything the key index needs from the store, as of change counter `version`."""

    version: int
    keys: tuple[StoredKey, ...] = ()
    teams: tuple[StoredTeam, ...] = ()
