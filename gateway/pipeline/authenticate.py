"""Authenticate: the caller's key, as a `Principal`, or a 401.

Both header forms every client we serve sends are read: `Authorization: Bearer <key>`
(the OpenAI SDKs, Claude Code with `ANTHROPIC_AUTH_TOKEN`) and `x-api-key: <key>` (the
Anthropic SDKs, Claude Code with `ANTHROPIC_API_KEY`). The lookup is an in-memory dict
probe on the key's sha256 (`gateway.keys.index`), never a store query.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.errors import AuthenticationError
from gateway.keys.index import KeyIndex, Principal, key_from_headers

__all__ = ["authenticate"]


def authenticate(keys: KeyIndex, headers: Iterable[tuple[bytes, bytes]]) -> Principal:
    key = key_from_headers(headers)
    principal = keys.lookup(key) if key else None
    if principal is None:
        message = (
            "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
            if key is None
            else "Incorrect API key provided."
        )
        raise AuthenticationError(message)
    return principal
