"""Bedrock's reasoning as the Responses API's opaque `encrypted_content`, and back.

Why: Anthropic models on Bedrock refuse a tool-use turn under thinking unless the turn's
reasoning comes back exactly as it was produced, signature included. Responses clients
that keep no server state (`store: false`, which Codex always sends) carry reasoning from
one request to the next only as a `reasoning` item's `encrypted_content`, a string they
never look into. So that string holds what Bedrock needs: the reasoning text and its
signature, and any redacted blocks, byte for byte.

Tamper-evident, not secret: the client already saw the reasoning text (if it asked for
it), but it must not be able to make Bedrock receive reasoning the model never produced
under a signature. Bedrock would refuse a forged signature anyway; the MAC lets us answer
such a request with a clear 400 naming the item instead of an opaque upstream error, and
keeps a client from presenting another key's content as its own model output.

Format: `gw1.<payload>.<mac>`, both parts unpadded base64url. The payload is compact JSON
`{"t": text, "s": signature, "r": [redacted blob, standard base64, ...]}` (absent keys
are absent); the MAC is HMAC-SHA256 over `gw1.<payload>` with a key the caller passes in.
This module never makes or reads a key: the surface holds it (see
`gateway.surfaces.openai_responses`), so the translation stays pure and golden files can
use a fixed key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Final

__all__ = ["PREFIX", "DecodeError", "Reasoning", "decode_reasoning", "encode_reasoning"]

PREFIX: Final = "gw1."


class DecodeError(ValueError):
    """`encrypted_content` that this gateway (with this key) did not produce, or altered."""


@dataclass(frozen=True, slots=True)
class Reasoning:
    """One answer's reasoning as Bedrock returned it."""

    text: str | None = None
    signature: str | None = None
    redacted: tuple[str, ...] = field(default=())  # standard base64, one per block

    @property
    def empty(self) -> bool:
        return self.text is None and self.signature is None and not self.redacted


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> str:
    return _b64(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())


def encode_reasoning(reasoning: Reasoning, *, key: bytes) -> str:
    """The `encrypted_content` string for `reasoning`."""
    body: dict[str, object] = {}
    if reasoning.text is not None:
        body["t"] = reasoning.text
    if reasoning.signature is not None:
        body["s"] = reasoning.signature
    if reasoning.redacted:
        body["r"] = list(reasoning.redacted)
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    signed = PREFIX + payload
    return f"{signed}.{_mac(key, signed)}"


def decode_reasoning(content: str, *, key: bytes) -> Reasoning:
    """The reasoning inside `content`; `DecodeError` if we did not make it with `key`."""
    if not content.startswith(PREFIX):
        raise DecodeError("it was not produced by this gateway")
    signed, _, mac = content.rpartition(".")
    if not signed or not hmac.compare_digest(mac, _mac(key, signed)):
        raise DecodeError("its integrity check failed (altered, or made with another key)")
    try:
        body = json.loads(_unb64(signed[len(PREFIX) :]))
    except (binascii.Error, ValueError):
        raise DecodeError("its payload is malformed") from None
    if not isinstance(body, dict):
        raise DecodeError("its payload is malformed")
    text, signature, redacted = body.get("t"), body.get("s"), body.get("r", [])
    if (
        not isinstance(text, str | None)
        or not isinstance(signature, str | None)
        or not isinstance(redacted, list)
        or not all(isinstance(blob, str) for blob in redacted)
    ):
        raise DecodeError("its payload is malformed")
    return Reasoning(text=text, signature=signature, redacted=tuple(redacted))
