"""Converse requests as botocore puts them on the wire, for comparing with JSON goldens."""

from __future__ import annotations

import base64
from typing import Any


def to_wire(value: Any) -> Any:
    """`value` as JSON, blobs as the base64 text botocore sends."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_wire(item) for item in value]
    return value
