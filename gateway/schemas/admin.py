"""Wire types of the admin API (`/v1/admin/...`): the bodies it accepts.

Unknown fields are refused (`extra="forbid"`): a typo such as `budget` for
`budget_usd_monthly` must be a 400 naming it, not a key created without its budget.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["KEY_ID_PATTERN", "KeyCreate", "KeyPatch", "TeamPut", "admin_validation_error"]

# The same characters a config key id may use (`gateway.config.KeyConfig.id`); a team
# name from the admin API also lands in a URL path, so it follows the same rule.
KEY_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,64}$"

_Name = Annotated[str, Field(min_length=1, max_length=128)]
_Limit = Annotated[int, Field(gt=0)] | None
_Budget = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=10)] | None
_Models = Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=1000)] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreate(_Body):
    id: Annotated[str, Field(pattern=KEY_ID_PATTERN)] | None = None
    team: Annotated[str, Field(pattern=KEY_ID_PATTERN)] | None = None
    user: _Name | None = None
    models: _Models = None
    rpm: _Limit = None
    tpm: _Limit = None
    budget_usd_monthly: _Budget = None
    expires_at: AwareDatetime | None = None  # RFC 3339 with an offset; naive is ambiguous


class KeyPatch(_Body):
    """Only the fields sent change (`model_fields_set`); null clears a limit."""

    team: Annotated[str, Field(pattern=KEY_ID_PATTERN)] | None = None
    user: _Name | None = None
    models: _Models = None
    rpm: _Limit = None
    tpm: _Limit = None
    budget_usd_monthly: _Budget = None
    expires_at: AwareDatetime | None = None
    disabled: bool | None = None

    def changes(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in sorted(self.model_fields_set):
            value = getattr(self, name)
            if name == "models" and value is not None:
                value = tuple(value)
            if name == "disabled" and value is None:
                raise ValueError("disabled: must be true or false")
            values[name] = value
        return values


class TeamPut(_Body):
    rpm: _Limit = None
    tpm: _Limit = None
    budget_usd_monthly: _Budget = None
    models: _Models = None


def admin_validation_error(exc: pydantic.ValidationError) -> tuple[str | None, str]:
    """The first error as (`param`, message) for an OpenAI-shaped 400."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    param = ".".join(loc) or None
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "Unknown field."
    return param, f"{param}: {message}" if param else message
