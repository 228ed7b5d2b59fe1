"""The byte-level checks every image goes through, whether it came inline or from a URL.

Bedrock's Converse API takes images as raw bytes plus a format name, and it trusts neither
the file name nor a MIME type: it looks at the bytes. So do we. A client that labels a JPEG
as `image/png` gets its image through (the bytes win), while a "PNG" that is really an HTML
error page is refused here with a 400 rather than by Bedrock with a confusing
`ValidationException`.

Data URLs are decoded strictly. `base64.b64decode` by default skips characters outside the
alphabet, which would turn a truncated or mangled payload into silently different bytes;
we refuse anything that is not canonical standard base64 instead, so the client learns
that its encoder is at fault.

This module is pure (no I/O, no logging, no clock) so the translator can import it;
`gateway.images.fetcher` does the network side and reuses these checks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Final, Literal

__all__ = [
    "MIME_TYPES",
    "ImageFormat",
    "decode_data_url",
    "image_from_data_url",
    "mime_image_format",
    "sniff_image_format",
]

ImageFormat = Literal["png", "jpeg", "gif", "webp"]

MIME_TYPES: Final[Mapping[str, ImageFormat]] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

_ACCEPTED = ", ".join(MIME_TYPES)

# Long enough to identify a value in an error message, short enough not to echo a payload.
_ECHO_LIMIT = 60


def sniff_image_format(data: bytes) -> ImageFormat | None:
    """The format named by the file signature at the start of `data`, or None.

    Only the four formats Bedrock accepts are recognised; anything else, including an
    empty or truncated header, is None.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    # RIFF container: "RIFF", a 4-byte little-endian size, then the form type.
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


def mime_image_format(content_type: str) -> ImageFormat | None:
    """The format a `Content-Type` (or data URL media type) names, ignoring parameters.

    `image/PNG; charset=binary` is `png`; a type we cannot send to Bedrock is None.
    """
    essence = content_type.split(";", 1)[0].strip().lower()
    return MIME_TYPES.get(essence)


def decode_data_url(url: str, *, max_bytes: int | None = None) -> tuple[str, bytes]:
    """Split `data:<mime>[;param=value]*;base64,<payload>` into (mime, decoded bytes).

    The mime is returned lower-cased, without parameters, and must be one of the image
    types in `MIME_TYPES`. The payload must be non-empty, standard base64 (`+/`, padded,
    no whitespace). With `max_bytes`, an oversized payload is refused from its length,
    before any of it is decoded. Raises ValueError with a message fit for the client.

    The bytes themselves are not inspected; `image_from_data_url` does that.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() != "data":
        raise ValueError("not a data URL (expected 'data:image/...;base64,...')")
    header, comma, payload = rest.partition(",")
    if not comma:
        raise ValueError("the data URL has no ',' between its header and its data")
    params = header.split(";")
    if len(params) < 2 or params[-1].strip().lower() != "base64":
        raise ValueError("the data URL must be base64-encoded ('data:image/png;base64,...')")
    mime = params[0].strip().lower()
    if mime not in MIME_TYPES:
        shown = mime[:_ECHO_LIMIT] or "(none)"
        raise ValueError(f"unsupported image type {shown!r} in data URL; use one of {_ACCEPTED}")
    if not payload:
        raise ValueError("the data URL carries no image data")
    if max_bytes is not None and _decoded_length(payload) > max_bytes:
        raise ValueError(f"the image in the data URL is larger than {max_bytes} bytes")
    return mime, _strict_b64decode(payload)


def image_from_data_url(url: str, *, max_bytes: int | None = None) -> tuple[ImageFormat, bytes]:
    """Decode a data URL to (format, bytes), the format taken from the bytes.

    A declared type that disagrees with the bytes is tolerated when the bytes are one of
    the supported formats: clients often label every upload `image/png`, and Bedrock only
    cares what the bytes are. Bytes that are no supported image raise ValueError.
    """
    mime, data = decode_data_url(url, max_bytes=max_bytes)
    image_format = sniff_image_format(data)
    if image_format is None:
        raise ValueError(
            f"the data URL is labelled {mime} but its bytes are not a PNG, JPEG, GIF or WebP image"
        )
    return image_format, data


def _decoded_length(payload: str) -> int:
    # Upper bound for well-formed input; malformed input is caught by the decoder.
    return len(payload) // 4 * 3 - payload[-2:].count("=")


def _strict_b64decode(payload: str) -> bytes:
    if not payload.isascii():
        raise ValueError("the data URL's data is not valid base64 (non-ASCII characters)")
    if len(payload) % 4:
        raise ValueError(
            "the data URL's data is not valid base64 (its length is not a multiple of 4; "
            "is the padding missing?)"
        )
    try:
        # validate=True rejects characters outside A-Z a-z 0-9 + / and '=' except at the end.
        return base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise ValueError(
            "the data URL's data is not valid base64 (only A-Z, a-z, 0-9, '+', '/' and "
            "trailing '=' are allowed; no whitespace or URL-safe alphabet)"
        ) from None
