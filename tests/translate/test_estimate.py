"""Issue 19, item 7: estimated input tokens size images and documents by the documented rules.

A disconnect estimate counted every non-text block as 16 characters, so a 1,600-token image
request was recorded as 111 input tokens.
"""

from __future__ import annotations

import struct
import zlib

import pytest

from gateway.translate.shared.estimate import (
    IMAGE_MAX_TOKENS,
    estimate_input_tokens,
    image_dimensions,
    image_tokens,
)


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dht = b"\xff\xc4" + struct.pack(">H", 5) + b"\x00\x00\x00"
    sof2 = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + dht + sof2 + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + bits.to_bytes(4, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


@pytest.mark.parametrize("make", [png, gif, jpeg, webp_vp8x, webp_vp8l])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (640, 480), (1092, 1092), (4000, 3000)])
def test_image_dimensions_from_the_header(make: object, width: int, height: int) -> None:
    assert callable(make)
    assert image_dimensions(make(width, height)) == (width, height)


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (200, 200, 54),  # 40,000 / 750, rounded up (Anthropic's table: ~54)
        (1000, 1000, 1334),
        (1092, 1092, 1590),  # the docs' largest 1:1 image that is not resized: ~1,590
        (4000, 3000, IMAGE_MAX_TOKENS),  # scaled to 1568 x 1176, then the cap
    ],
)
def test_image_tokens_follow_the_documented_rule(width: int, height: int, tokens: int) -> None:
    assert image_tokens(png(width, height)) == tokens


@pytest.mark.parametrize("data", [None, b"", b"not an image", b"\xff\xd8\xff\xe0\x00", b"\x89PNG"])
def test_an_unreadable_image_counts_as_the_cap(data: bytes | None) -> None:
    assert image_tokens(data) == IMAGE_MAX_TOKENS


def _request(*blocks: dict[str, object]) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": [{"text": "What is this?"}, *blocks]}]}


def test_an_image_request_is_not_recorded_as_a_hundred_tokens() -> None:
    image = {"image": {"format": "png", "source": {"bytes": png(1092, 1092)}}}
    assert estimate_input_tokens(_request(image)) == 1590 + 4  # 13 characters of text


def test_documents_by_format() -> None:
    pdf = b"%PDF-1.7\n" + b"<< /Type /Pages /Count 3 >>\n" + b"<< /Type /Page >>\n" * 3
    doc = {"document": {"format": "pdf", "name": "r", "source": {"bytes": pdf}}}
    assert estimate_input_tokens(_request(doc)) == 3 * 1500 + 4
    text = {"document": {"format": "md", "name": "n", "source": {"bytes": b"x" * 400}}}
    assert estimate_input_tokens(_request(text)) == 104  # (13 + 400) / 4
    docx = {"document": {"format": "docx", "name": "d", "source": {"bytes": b"\x00" * 4000}}}
    assert estimate_input_tokens(_request(docx)) == 1000 + 4


def test_system_tools_and_tool_results_count_as_text() -> None:
    request = {
        "system": [{"text": "s" * 40}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {"a": 1}}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "t",
                            "content": [{"json": {"b": 2}}, {"text": "ok"}],
                        }
                    }
                ],
            },
        ],
    }
    # 40 + len('{"a": 1}') 8 + len('{"b": 2}') 8 + 2 = 58 characters
    assert estimate_input_tokens(request) == 15


def test_anthropic_bodies_size_images_and_documents_by_their_rules() -> None:
    import base64

    from gateway.translate.shared.estimate import estimate_anthropic_input_tokens

    image = png(1092, 1092) + b"\x00" * 500_000
    pdf = b"%PDF-1.7\n" + b"<< /Type /Page >>\n" * 2
    body = {
        "system": "s" * 40,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "t" * 20},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(image).decode(),
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": base64.b64encode(pdf).decode(),
                        },
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            },
            {"role": "assistant", "content": "ok"},
        ],
    }
    # 1590 (image) + 3000 (two pages) + 1600 (a URL image: the cap) + (40 + 20 + 2) / 4
    assert estimate_anthropic_input_tokens(body) == 1590 + 3000 + 1600 + 16
