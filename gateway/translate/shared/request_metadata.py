"""Converse `requestMetadata`: who called, cleaned to what Bedrock accepts.

Every call leaves the gateway under one AWS role, so Bedrock's own invocation logs (and
the AWS cost reports built from them) cannot tell one team's calls from another's. With
`bedrock.request_metadata: true` the gateway stamps each call with the caller's `key_id`,
`team` and `user` (`gateway_request_metadata`); clients may add their own entries (the
OpenAI `user` and `metadata` fields), merged after the gateway's by `merged_metadata`, so
that a client can never overwrite or fake the gateway's attribution.

Bedrock allows at most 16 entries, keys of 1..256 and values of 0..256 characters of
`[a-zA-Z0-9\\s:_@$#=/+,-.]`. Metadata never fails a request: each other character becomes
`_`, text is cut at 256, entries whose key ends up empty or repeated are skipped, and
entries past the 16th are left out (the first ones win).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "GATEWAY_METADATA_KEYS",
    "clean_metadata",
    "gateway_request_metadata",
    "merged_metadata",
]

_DISALLOWED: Final = re.compile(r"[^a-zA-Z0-9 \t\n\x0b\f\r:_@$#=/+,\-.]")
_MAX_ENTRIES: Final = 16
_MAX_CHARS: Final = 256

# The entries the gateway owns; a client's entry of the same name is skipped.
GATEWAY_METADATA_KEYS: Final = ("key_id", "team", "user")


def _text(text: str) -> str:
    return _DISALLOWED.sub("_", text[:_MAX_CHARS])


def clean_metadata(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Bedrock-safe entries from `pairs`, in order; see the module docstring."""
    result: dict[str, str] = {}
    for key, value in pairs:
        clean_key = _text(key)
        if not clean_key or clean_key in result:
            continue
        result[clean_key] = _text(value)
        if len(result) == _MAX_ENTRIES:
            break
    return result


def gateway_request_metadata(
    key_id: str | None, team: str | None, user: str | None
) -> dict[str, str]:
    """The gateway's own entries for a caller: `key_id`, `team`, `user`, those that are set."""
    values = (key_id, team, user)
    return clean_metadata(
        (name, value) for name, value in zip(GATEWAY_METADATA_KEYS, values, strict=True) if value
    )


def merged_metadata(
    gateway: Mapping[str, str] | None, client: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """The gateway's entries first, then the client's (never over the gateway's)."""
    return clean_metadata([*(gateway or {}).items(), *client])
