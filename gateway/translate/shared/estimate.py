"""Input tokens of a Converse request, estimated for the records Bedrock's usage never reached.

When a client goes away before Bedrock's `metadata` event, the usage record must still
say roughly what the request cost (`estimated: true`). Counting an image or a document as
16 characters turned a 1,600-token image request into 111 tokens (issue 19, item 7), so
every block is sized by the rule its provider documents:

* text (messages, system prompt, tool specs, tool calls and results): about 4 characters a
  token, the usual rule of thumb for English;
* an image: Anthropic's "tokens = width * height / 750" after the image is scaled down to
  at most 1,568 px on its long edge, and at most about 1,600 tokens
  (docs.anthropic.com, "Vision: calculate image costs"); its size is read from the file
  header (PNG, JPEG, GIF, WebP), and an image whose size cannot be read counts as the cap;
* a document: a PDF at 1,500 tokens a page, the low end of Anthropic's "1,500-3,000 tokens
  per page" (PDF support), pages counted from the page objects; a text format (txt, md,
  csv, html) as text; other binary formats at one token per 4 bytes.

Pure: data in, a number out.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "IMAGE_MAX_TOKENS",
    "estimate_anthropic_input_tokens",
    "estimate_input_tokens",
    "image_dimensions",
    "image_tokens",
]

CHARS_PER_TOKEN = 4
IMAGE_MAX_TOKENS = 1600
IMAGE_MAX_EDGE_PX = 1568
IMAGE_PIXELS_PER_TOKEN = 750
PDF_TOKENS_PER_PAGE = 1500
_TEXT_DOCUMENTS = frozenset({"txt", "md", "csv", "html"})
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def estimate_input_tokens(request: Mapping[str, Any]) -> int:
    """Estimated input tokens of a Converse request (system, messages, tool config)."""
    characters = 0
    tokens = 0
    for block in _blocks(request):
        chars, extra = _block_size(block)
        characters += chars
        tokens += extra
    tool_config = request.get("toolConfig")
    if tool_config:
        characters += len(json.dumps(tool_config, default=str))
    return tokens + math.ceil(characters / CHARS_PER_TOKEN)


def estimate_anthropic_input_tokens(body: Mapping[str, Any]) -> int:
    """The same estimate for an Anthropic Messages body (`system`, `messages`, `tools`).

    Images and documents arrive base64-encoded there: only the start of an image is
    decoded, enough for its header, and a PDF's pages are counted in its bytes.
    """
    characters = 0
    tokens = 0
    system = body.get("system")
    blocks: list[Any] = [system] if isinstance(system, str) else list(system or ())
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            content = message.get("content")
            blocks.extend([content] if isinstance(content, str) else content or ())
    for block in blocks:
        chars, extra = _anthropic_block_size(block)
        characters += chars
        tokens += extra
    if body.get("tools"):
        characters += len(json.dumps(body["tools"], default=str))
    return tokens + math.ceil(characters / CHARS_PER_TOKEN)


def _anthropic_block_size(block: Any) -> tuple[int, int]:
    if isinstance(block, str):
        return len(block), 0
    if not isinstance(block, Mapping):
        return 0, 0
    kind = block.get("type")
    if kind == "text":
        return len(str(block.get("text") or "")), 0
    if kind == "thinking":
        return len(str(block.get("thinking") or "")), 0
    if kind == "tool_use":
        return len(json.dumps(block.get("input"), default=str)), 0
    if kind == "tool_result":
        content = block.get("content")
        inner = [content] if isinstance(content, str) else content or ()
        sizes = [_anthropic_block_size(item) for item in inner]
        return sum(c for c, _ in sizes), sum(t for _, t in sizes)
    source = block.get("source")
    if kind == "image":
        return 0, image_tokens(_base64_prefix(source, _IMAGE_HEADER_B64_CHARS))
    if kind == "document":
        if isinstance(source, Mapping) and source.get("type") == "text":
            return len(str(source.get("data") or "")), 0
        data = _base64_prefix(source, None)
        if data is None:
            return 0, PDF_TOKENS_PER_PAGE
        return 0, PDF_TOKENS_PER_PAGE * max(1, len(_PDF_PAGE.findall(data)))
    return 0, 0


# 64 KiB of image: past any PNG, GIF or WebP header, and past a JPEG's usual EXIF block.
_IMAGE_HEADER_B64_CHARS = 87_384


def _base64_prefix(source: Any, limit: int | None) -> bytes | None:
    if not isinstance(source, Mapping) or source.get("type") != "base64":
        return None
    data = source.get("data")
    if not isinstance(data, str):
        return None
    text = data if limit is None else data[:limit]
    try:
        return base64.b64decode(text[: len(text) - len(text) % 4])
    except ValueError:
        return None


def _blocks(request: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for block in request.get("system", ()) or ():
        if isinstance(block, Mapping):
            yield block
    for message in request.get("messages", ()) or ():
        for block in message.get("content", ()) or ():
            if isinstance(block, Mapping):
                yield block


def _block_size(block: Mapping[str, Any]) -> tuple[int, int]:
    """(characters of text, tokens of media) of one content block."""
    if isinstance(text := block.get("text"), str):
        return len(text), 0
    if isinstance(image := block.get("image"), Mapping):
        return 0, image_tokens(_source_bytes(image))
    if isinstance(document := block.get("document"), Mapping):
        return _document_size(document)
    if isinstance(tool_use := block.get("toolUse"), Mapping):
        return len(json.dumps(tool_use.get("input"), default=str)), 0
    if isinstance(result := block.get("toolResult"), Mapping):
        chars = tokens = 0
        for inner in result.get("content", ()) or ():
            if isinstance(inner, Mapping):
                if "json" in inner:
                    chars += len(json.dumps(inner["json"], default=str))
                else:
                    c, t = _block_size(inner)
                    chars, tokens = chars + c, tokens + t
        return chars, tokens
    if isinstance(reasoning := block.get("reasoningContent"), Mapping):
        text = (reasoning.get("reasoningText") or {}).get("text")
        return (len(text) if isinstance(text, str) else 0), 0
    return 0, 0  # cache points and blocks without content


def _source_bytes(media: Mapping[str, Any]) -> bytes | None:
    source = media.get("source")
    data = source.get("bytes") if isinstance(source, Mapping) else None
    return bytes(data) if isinstance(data, bytes | bytearray | memoryview) else None


def _document_size(document: Mapping[str, Any]) -> tuple[int, int]:
    source = document.get("source")
    if isinstance(source, Mapping) and isinstance(source.get("text"), str):
        return len(source["text"]), 0
    data = _source_bytes(document)
    if data is None:
        return 0, PDF_TOKENS_PER_PAGE
    kind = str(document.get("format", "")).lower()
    if kind in _TEXT_DOCUMENTS:
        return len(data.decode("utf-8", "replace")), 0
    if kind == "pdf":
        return 0, PDF_TOKENS_PER_PAGE * max(1, len(_PDF_PAGE.findall(data)))
    return 0, math.ceil(len(data) / CHARS_PER_TOKEN)


def image_tokens(data: bytes | None) -> int:
    """Anthropic's image sizing rule; the cap when the size cannot be read."""
    size = image_dimensions(data) if data else None
    if size is None:
        return IMAGE_MAX_TOKENS
    width, height = size
    scale = min(1.0, IMAGE_MAX_EDGE_PX / max(width, height))
    pixels = (width * scale) * (height * scale)
    return max(1, min(IMAGE_MAX_TOKENS, math.ceil(pixels / IMAGE_PIXELS_PER_TOKEN)))


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header; None if unreadable."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
        elif data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_dimensions(data)
        elif data.startswith(b"\xff\xd8"):
            return _jpeg_dimensions(data)
        else:
            return None
    except struct.error:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        width, height = width & 0x3FFF, height & 0x3FFF
    elif chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        return None
    return (width, height) if width > 0 and height > 0 else None


# JPEG start-of-frame markers (baseline, progressive, ...); not DHT (C4), JPG (C8), DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return (width, height) if width > 0 and height > 0 else None
        position += 2 + length
    return None
