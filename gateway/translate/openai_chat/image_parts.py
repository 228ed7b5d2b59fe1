"""`image_url` parts as Converse `image` blocks, and the list of images the app must fetch.

Converse takes images only as bytes with a format name, so every image is resolved to
bytes before it reaches Bedrock:

* A data URL (`data:image/png;base64,...`) is decoded here by
  `gateway.translate.shared.images.image_from_data_url`: strict base64, and the format taken
  from the bytes (PNG, JPEG, GIF or WebP), whatever the declared type says.
* An http(s) URL needs the network, which this package may not touch. The app calls
  `remote_image_urls` first, downloads each URL with its guarded fetcher, and passes the
  results in as `images` (URL -> (format, bytes)). A URL missing from that mapping is a
  bug in the app, not in the request, so it raises `UnfetchedImageError` (a 500), never
  a silent drop: an answer about an image the model never saw would be wrong.
* Any other scheme is a 400 naming the part's `image_url`.

The bytes are passed to botocore raw: it base64-encodes blobs itself. Images larger than
the model's `max_image_bytes` are refused with a 400 (Bedrock documents 3.75 MB per image
for Claude), from the data URL's length before decoding when they come inline.
`image_url.detail` is a hint for OpenAI's own resizer; Bedrock has nothing like it, and
ignoring it changes the cost, not the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from gateway.errors import InvalidRequestError
from gateway.schemas.converse import ImageBlock
from gateway.schemas.openai import ImagePart, Message
from gateway.translate.shared.images import ImageFormat, image_from_data_url

__all__ = ["REMOTE_SCHEMES", "UnfetchedImageError", "image_block", "remote_image_urls"]

REMOTE_SCHEMES: Final = frozenset({"http", "https"})

_FORMATS: Final[Mapping[str, ImageFormat]] = {
    "png": "png",
    "jpeg": "jpeg",
    "gif": "gif",
    "webp": "webp",
}


class UnfetchedImageError(LookupError):
    """An http(s) image URL reached the translator without its prefetched bytes.

    The app must fetch every URL `remote_image_urls` lists and pass the results in; this
    error means it did not, which no client can fix.
    """


def _scheme(url: str) -> str:
    scheme, colon, _ = url.partition(":")
    return scheme.strip().lower() if colon else ""


def remote_image_urls(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(url, param) for each distinct http(s) image URL in the user messages, in order.

    `param` is the JSON path of the URL's first occurrence, e.g.
    `messages[2].content[1].image_url`, for the fetcher's error messages. A URL that
    appears twice is listed once: the translator looks images up by URL. Images in other
    roles are not listed, since the translator refuses them without a fetch.
    """
    found: dict[str, str] = {}
    for i, message in enumerate(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            continue
        for j, part in enumerate(content):
            if isinstance(part, ImagePart) and _scheme(part.image_url.url) in REMOTE_SCHEMES:
                found.setdefault(part.image_url.url, f"messages[{i}].content[{j}].image_url")
    return list(found.items())


def image_block(
    part: ImagePart,
    *,
    param: str,
    images: Mapping[str, tuple[str, bytes]],
    max_bytes: int,
) -> ImageBlock:
    """The Converse image for one user `image_url` part; `param` is the part's path."""
    url = part.image_url.url
    where = f"{param}.image_url"
    scheme = _scheme(url)
    if scheme == "data":
        try:
            image_format, data = image_from_data_url(url, max_bytes=max_bytes)
        except ValueError as exc:
            raise InvalidRequestError(f"Invalid image: {exc}.", param=where) from None
        return {"format": image_format, "source": {"bytes": data}}
    if scheme not in REMOTE_SCHEMES:
        raise InvalidRequestError(
            "An image URL must be an https (or http) URL or a data URL "
            "('data:image/png;base64,...').",
            param=where,
        )
    fetched = images.get(url)
    if fetched is None:
        raise UnfetchedImageError(
            f"the image at {param} was not prefetched; call remote_image_urls() and pass "
            "the downloaded images to openai_to_converse_request()"
        )
    declared, data = fetched
    fetched_format = _FORMATS.get(declared)
    if fetched_format is None:
        raise UnfetchedImageError(
            f"the prefetched image at {param} has format {declared!r}, "
            f"not one of {', '.join(_FORMATS)}"
        )
    if len(data) > max_bytes:
        raise InvalidRequestError(
            f"The image is {len(data)} bytes; this model accepts images up to {max_bytes} bytes.",
            param=where,
        )
    return {"format": fetched_format, "source": {"bytes": data}}
