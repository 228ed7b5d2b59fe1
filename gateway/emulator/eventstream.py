"""Encode AWS event-stream frames, the binary framing of every ConverseStream answer.

A frame is::

    total length (u32) | headers length (u32) | CRC32 of those 8 bytes
    headers | payload | CRC32 of everything before it

All integers are big-endian. Each header is a 1-byte name length, the name, a 1-byte value
type and the value; Bedrock only ever uses type 7 (a string with a 2-byte length).

Clients verify both checksums and drop the connection on a mismatch, so the encoder has no
shortcuts beyond caching: the header block of each event type is encoded once, because
a stream repeats the same handful of event types hundreds of times.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from zlib import crc32

__all__ = ["encode_frame", "encode_headers", "event_frame", "exception_frame"]

_STRING = 7
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")
_PRELUDE_AND_CRCS = _PRELUDE.size + 2 * _U32.size
_MAX_HEADERS = 128 * 1024
_MAX_PAYLOAD = 24 * 1024 * 1024


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode string headers in the given order (the order clients see)."""
    parts: list[bytes] = []
    for name, value in headers:
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if len(raw_name) > 255 or len(raw_value) > 65535:
            raise ValueError(f"event-stream header {name!r} is too long")
        parts.append(bytes((len(raw_name),)))
        parts.append(raw_name)
        parts.append(struct.pack(">BH", _STRING, len(raw_value)))
        parts.append(raw_value)
    return b"".join(parts)


def encode_frame(headers: bytes, payload: bytes) -> bytes:
    """Wrap an encoded header block and a payload into one checksummed frame."""
    if len(headers) > _MAX_HEADERS or len(payload) > _MAX_PAYLOAD:
        # The limits botocore's decoder enforces; a bigger frame would never be read.
        raise ValueError("event-stream frame exceeds the protocol's size limits")
    prelude = _PRELUDE.pack(_PRELUDE_AND_CRCS + len(headers) + len(payload), len(headers))
    head = prelude + _U32.pack(crc32(prelude))
    message_crc = crc32(payload, crc32(headers, crc32(head)))
    return b"".join((head, headers, payload, _U32.pack(message_crc)))


_header_blocks: dict[tuple[str, str], bytes] = {}


def event_frame(event_type: str, payload: bytes) -> bytes:
    """A normal event (`:message-type` event) carrying a JSON payload."""
    return encode_frame(_headers(":event-type", event_type, "event"), payload)


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    """An in-stream error (`:message-type` exception); botocore raises `EventStreamError`."""
    return encode_frame(_headers(":exception-type", exception_type, "exception"), payload)


def _headers(type_header: str, name: str, message_type: str) -> bytes:
    # A stream repeats a handful of event types: encode each header block once.
    key = (type_header, name)
    headers = _header_blocks.get(key)
    if headers is None:
        headers = _header_blocks[key] = encode_headers(
            (
                (type_header, name),
                (":content-type", "application/json"),
                (":message-type", message_type),
            )
        )
    return headers
