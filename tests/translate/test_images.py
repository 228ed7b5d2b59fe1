"""Image signatures, content types and strict data URL decoding."""

from __future__ import annotations

import ast
import base64
import inspect
import re

import pytest

from gateway.translate.shared import images
from gateway.translate.shared.images import (
    decode_data_url,
    image_from_data_url,
    mime_image_format,
    sniff_image_format,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)
GIF87 = b"GIF87a\x01\x00\x01\x00" + bytes(10)
GIF89 = b"GIF89a\x01\x00\x01\x00" + bytes(10)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(20)


def data_url(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "png"),
        (JPEG, "jpeg"),
        (GIF87, "gif"),
        (GIF89, "gif"),
        (WEBP, "webp"),
        (b"", None),
        (b"\x89PNG\r\n", None),  # truncated signature
        (b"\xff\xd8", None),
        (b"GIF88a" + bytes(10), None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20), None),  # RIFF, but audio
        (b"RIFF\x24\x00\x00\x00WEB", None),
        (b"<html><body>Not found</body></html>", None),
        (b"BM" + bytes(30), None),  # BMP: an image, but not one Bedrock takes
        (b"x" + PNG, None),  # the signature must be at the start
    ],
)
def test_sniff_image_format(data: bytes, expected: str | None) -> None:
    assert sniff_image_format(data) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("image/png", "png"),
        ("image/jpeg", "jpeg"),
        ("image/gif", "gif"),
        ("image/webp", "webp"),
        ("IMAGE/PNG", "png"),
        ("image/png; charset=binary", "png"),
        (" image/webp ;q=1", "webp"),
        ("image/svg+xml", None),
        ("image/bmp", None),
        ("text/html; charset=utf-8", None),
        ("application/octet-stream", None),
        ("", None),
        ("image/png-ish", None),
    ],
)
def test_mime_image_format(content_type: str, expected: str | None) -> None:
    assert mime_image_format(content_type) == expected


@pytest.mark.parametrize(
    ("mime", "payload", "expected_format"),
    [
        ("image/png", PNG, "png"),
        ("image/jpeg", JPEG, "jpeg"),
        ("image/gif", GIF89, "gif"),
        ("image/webp", WEBP, "webp"),
    ],
)
def test_good_data_urls(mime: str, payload: bytes, expected_format: str) -> None:
    url = data_url(mime, payload)
    assert decode_data_url(url) == (mime, payload)
    assert image_from_data_url(url) == (expected_format, payload)


def test_data_url_header_is_case_insensitive_and_may_carry_parameters() -> None:
    encoded = base64.b64encode(PNG).decode()
    url = f"DATA:Image/PNG;name=cat.png;BASE64,{encoded}"
    assert decode_data_url(url) == ("image/png", PNG)


def test_mismatched_mime_keeps_declared_type_but_format_comes_from_bytes() -> None:
    url = data_url("image/png", JPEG)
    assert decode_data_url(url) == ("image/png", JPEG)
    assert image_from_data_url(url) == ("jpeg", JPEG)


def test_supported_mime_with_bytes_that_are_no_image() -> None:
    url = data_url("image/png", b"<html>surprise</html>")
    with pytest.raises(ValueError, match=r"labelled image/png but its bytes are not"):
        image_from_data_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "not a data URL"),
        ("data-ish:image/png;base64,AAAA", "not a data URL"),
        ("data:image/png;base64", "no ','"),
        ("data:image/png,rawbytes", "must be base64-encoded"),
        ("data:;base64,AAAA", "unsupported image type '(none)'"),
        ("data:base64," + base64.b64encode(PNG).decode(), "must be base64-encoded"),
        ("data:text/plain;base64," + base64.b64encode(PNG).decode(), "'text/plain'"),
        ("data:image/svg+xml;base64,PHN2Zy8+", "'image/svg+xml'"),
        ("data:image/png;base64,", "no image data"),
        # Not base64 at all, or base64 in a form we refuse to guess about.
        ("data:image/png;base64,this is not base64!!", "not valid base64 (only"),
        ("data:image/png;base64,iVBORw0KGgo", "multiple of 4"),  # padding stripped
        ("data:image/png;base64,iVBO\nRw0KGgo", "not valid base64 (only"),  # line break
        ("data:image/png;base64,iVBO-_0KGgo=", "not valid base64 (only"),  # URL-safe alphabet
        ("data:image/png;base64,iV=ORw0KGgo=", "not valid base64 (only"),  # '=' inside
        ("data:image/png;base64,iVBORw0KGgé=", "non-ASCII"),
    ],
)
def test_bad_data_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        decode_data_url(url)
    with pytest.raises(ValueError, match=re.escape(message)):
        image_from_data_url(url)


def test_data_url_size_limit_is_checked_before_decoding() -> None:
    url = data_url("image/png", PNG)
    assert decode_data_url(url, max_bytes=len(PNG)) == ("image/png", PNG)
    with pytest.raises(ValueError, match=f"larger than {len(PNG) - 1} bytes"):
        decode_data_url(url, max_bytes=len(PNG) - 1)
    # Caught from the length alone: this payload would not even decode.
    with pytest.raises(ValueError, match="larger than 3 bytes"):
        decode_data_url("data:image/png;base64," + "!" * 400, max_bytes=3)


def test_module_is_pure() -> None:
    """The translator imports this module, and the translator must not do I/O."""
    tree = ast.parse(inspect.getsource(images))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "base64", "binascii", "collections", "typing"}
