"""Message content parts as Converse blocks.

Why apart from `gateway.translate.openai_chat.messages`: that module decides which turn a
message lands in; this one decides what each part of a message becomes, with the
per-request state that needs (prefetched images, the image size limit, document names).

Parts, by message role:

* user: text, `image_url` (`gateway.translate.openai_chat.image_parts`), `file`
  (`gateway.translate.shared.documents`). `input_audio` is refused with a 400: Converse
  takes no audio.
* assistant: text and refusal (the message's `refusal` is kept as text when it has no
  other text). Images and files are refused with a 400 naming the part, since Bedrock
  takes them only in user turns.
* system, developer and tool: text.

A part is never dropped, even with `drop_unsupported_params`: an answer about an image
the model never saw would be silently wrong. Blank text is the exception: it carries
nothing and Bedrock rejects it. `cache_control` on a part becomes a cache point after it
(`gateway.translate.shared.cache_points`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, assert_never

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import ContentBlock, SystemContentBlock, ToolResultContentBlock
from gateway.schemas.openai import (
    CacheControl,
    FilePart,
    ImagePart,
    InputAudioPart,
    RefusalPart,
    TextPart,
)
from gateway.translate.openai_chat.image_parts import image_block
from gateway.translate.shared.cache_points import CacheMarks, CachePoint, append_cache_point
from gateway.translate.shared.documents import DocumentNames, document_block

__all__ = ["ContentParts"]


class ContentParts:
    """Converts the content parts of one request's messages; one instance per request."""

    def __init__(
        self,
        *,
        images: Mapping[str, tuple[str, bytes]],
        max_image_bytes: int,
        cache: CacheMarks,
    ) -> None:
        self._images = images
        self._max_image_bytes = max_image_bytes
        self._cache = cache
        self._documents = DocumentNames()

    def user(self, content: str | Sequence[Any], index: int) -> list[ContentBlock]:
        """The blocks of a user message; `index` is its position in `messages`."""
        if isinstance(content, str):
            return [{"text": content}] if content.strip() else []
        blocks: list[ContentBlock] = []
        for j, part in enumerate(content):
            match part:
                case TextPart():
                    if part.text.strip():
                        blocks.append({"text": part.text})
                case ImagePart():
                    image = image_block(
                        part,
                        param=_part_param(index, j),
                        images=self._images,
                        max_bytes=self._max_image_bytes,
                    )
                    blocks.append({"image": image})
                case FilePart():
                    document = document_block(
                        part.file, param=_part_param(index, j), names=self._documents
                    )
                    blocks.append({"document": document})
                case InputAudioPart():
                    raise UnsupportedParameterError(
                        "Audio input is not supported: the Converse API takes no audio content.",
                        param=_part_param(index, j),
                    )
                case _:
                    assert_never(part)
            if part.cache_control is not None:
                self._add_cache_point(blocks, part.cache_control, index, j)
        return blocks

    def assistant(
        self, content: str | Sequence[Any] | None, refusal: str | None, index: int
    ) -> list[ContentBlock]:
        """The text blocks of an assistant message, its `refusal` when it has no text."""
        blocks: list[ContentBlock] = []
        if isinstance(content, str):
            if content.strip():
                blocks.append({"text": content})
        else:
            for j, part in enumerate(content or ()):
                match part:
                    case TextPart():
                        if part.text.strip():
                            blocks.append({"text": part.text})
                        if part.cache_control is not None:
                            self._add_cache_point(blocks, part.cache_control, index, j)
                    case RefusalPart():
                        if part.refusal.strip():
                            blocks.append({"text": part.refusal})
                    case ImagePart() | FilePart():
                        raise InvalidRequestError(
                            "Images and files can only be sent in user messages; Bedrock "
                            "refuses them in assistant turns.",
                            param=_part_param(index, j),
                        )
                    case _:
                        assert_never(part)
        if refusal and refusal.strip() and not any("text" in block for block in blocks):
            blocks.insert(0, {"text": refusal})
        return blocks

    def system(self, content: str | Sequence[TextPart], index: int) -> list[SystemContentBlock]:
        """The system blocks of a system or developer message."""
        if isinstance(content, str):
            return [{"text": content}] if content.strip() else []
        blocks: list[SystemContentBlock] = []
        for j, part in enumerate(content):
            if part.text.strip():
                blocks.append({"text": part.text})
            if part.cache_control is not None:
                self._add_cache_point(blocks, part.cache_control, index, j)
        return blocks

    def tool_result(
        self, content: str | Sequence[TextPart], index: int
    ) -> tuple[list[ToolResultContentBlock], CachePoint | None]:
        """The non-blank text blocks of a tool message, and the cache point it asks for."""
        if isinstance(content, str):
            return ([{"text": content}] if content.strip() else []), None
        cached: CachePoint | None = None
        for j, part in enumerate(content):
            if part.cache_control is not None:
                cached = self._cache.requested(part.cache_control, _part_param(index, j))
        return [{"text": part.text} for part in content if part.text.strip()], cached

    def _add_cache_point(
        self, blocks: list[Any], control: CacheControl, index: int, position: int
    ) -> None:
        """The cache point part `position` of message `index` asks for, after `blocks`."""
        append_cache_point(blocks, self._cache.requested(control, _part_param(index, position)))


def _part_param(index: int, position: int) -> str:
    """The JSON path of a content part, built only when it is needed (errors, cache marks)."""
    return f"messages[{index}].content[{position}]"
