"""Caller-supplied text on its way into the usage ledger: refused at the door, capped at the end.

A ledger row carries strings the caller chose (the request's `user`, a model id with
`allow_unlisted_models`, the `x-request-id` header). PostgreSQL refuses a NUL in a text
column and a btree index entry beyond ~2.7 kB, and a batch holding one such row failed as a
whole, for ever (issue 19, item 1). Two layers keep that from happening again:

* `validate_end_user` is what the request pipeline calls on the request's `user` (and the
  other surfaces' end-user fields): NUL, control characters, unpaired surrogates or more
  than `LEDGER_TEXT_MAX_CHARS` characters are a 400 naming the field.
* `ledger_text` / `clean_row_text` are the stores' last line of defence when a record
  becomes a row: whatever text reaches them is made storable (control characters and
  unpaired surrogates removed, then capped), so no caller string can make a store refuse
  a row.

Pure: no I/O, no logging, so every store and the pipeline can share it.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import InvalidRequestError

__all__ = [
    "LEDGER_TEXT_MAX_CHARS",
    "clean_row_text",
    "clean_values",
    "ledger_text",
    "validate_end_user",
]

LEDGER_TEXT_MAX_CHARS = 256
"""The longest caller-supplied text stored in a usage record (documented in the README)."""

# C0 controls (NUL, ESC, CR, LF, tab included), DEL, C1 controls, and unpaired surrogates
# (PostgreSQL's UTF-8 cannot hold them; asyncpg fails the whole batch on one).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def ledger_text(value: str | None, limit: int = LEDGER_TEXT_MAX_CHARS) -> str | None:
    """`value` as a store accepts it: unstorable characters removed, at most `limit` chars."""
    if value is None:
        return None
    if _UNSTORABLE.search(value) is not None:
        value = _UNSTORABLE.sub("", value)
    return value[:limit]


def clean_row_text(row: dict[str, Any], limit: int = LEDGER_TEXT_MAX_CHARS) -> dict[str, Any]:
    """Every str value of a record row through `ledger_text`, in place; returns the row."""
    row.update(zip(row, clean_values(list(row.values()), limit), strict=True))
    return row


def clean_values(values: list[Any], limit: int = LEDGER_TEXT_MAX_CHARS) -> list[Any]:
    """`clean_row_text` for a row as a list of column values, in place; returns the list."""
    if not _all_storable([value for value in values if isinstance(value, str)], limit):
        for index, value in enumerate(values):
            if isinstance(value, str):
                values[index] = ledger_text(value, limit)
    return values


def _all_storable(texts: list[str], limit: int) -> bool:
    """Whether every text is already what `ledger_text` would make of it, as every row of a
    well-behaved caller's is: one search over them all instead of one per column (a
    character class matches single characters, so joining cannot make or hide a match)."""
    if not texts:
        return True
    return max(map(len, texts)) <= limit and _UNSTORABLE.search("".join(texts)) is None


def validate_end_user(value: object, *, param: str = "user") -> str | None:
    """The request's end-user id, or a 400 naming `param` if the ledger could not hold it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{param}' must be a string.", param=param)
    if len(value) > LEDGER_TEXT_MAX_CHARS:
        raise InvalidRequestError(
            f"'{param}' is longer than {LEDGER_TEXT_MAX_CHARS} characters.", param=param
        )
    if _UNSTORABLE.search(value) is not None:
        raise InvalidRequestError(
            f"'{param}' must not contain control characters (NUL, newlines, escapes).",
            param=param,
        )
    return value
