"""`file` parts as Converse `document` blocks: format, bytes and a name Bedrock accepts.

OpenAI clients send a document as `{"type": "file", "file": {"file_data": "data:
application/pdf;base64,...", "filename": "report.pdf"}}`. Converse wants the raw bytes,
one of its nine formats, and a name.

* `file_id` points into OpenAI's file store, which Bedrock cannot read: 400 naming it.
* `file_data` is a data URL; plain base64 without the `data:` header is accepted too when
  the filename says the type. The payload must be strict standard base64, as for images.
* Format: the media type decides (`DOCUMENT_MIME_TYPES`); a generic or unknown one
  (`application/octet-stream`, or `application/zip` for a .docx) falls back to the
  filename's extension (`DOCUMENT_EXTENSIONS`). Neither known: 400 naming the part.
* Bytes: the binary formats must start with their signature (`%PDF-` for pdf, a ZIP
  header for docx/xlsx, an OLE2 header for doc/xls); the text formats must not contain a
  NUL byte, the usual test for binary data. A mismatch is a 400 naming `file_data`:
  Bedrock's own refusal of a broken document says much less.
* Size is left to Bedrock: its 4.5 MB per document does not apply to PDFs on newer models
  (Claude 4, Nova), and the request body limit already bounds what can arrive.
* Name: Bedrock allows only alphanumerics, single whitespace characters, hyphens,
  parentheses and square brackets, 1..200 characters (botocore's `DocumentBlock.name`),
  and the model reads it, so it should say nothing but what the document is. The name is
  the filename without directories and extension, accents removed, every other character
  turned into a space, spaces collapsed. A missing or empty result becomes `document-N`
  (N counts the request's documents from 1). Names are unique within the request, which
  makes them unique within each message too: a repeated name gets " (2)", " (3)", ...
  compared without regard to case. Earlier documents keep their names as a conversation
  grows, so prompt caches keep matching.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from collections.abc import Callable, Mapping
from typing import Final, Literal

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import DocumentBlock
from gateway.schemas.openai import FileData

__all__ = [
    "DOCUMENT_EXTENSIONS",
    "DOCUMENT_MIME_TYPES",
    "DocumentFormat",
    "DocumentNames",
    "document_block",
    "document_name",
]

DocumentFormat = Literal["pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"]

DOCUMENT_MIME_TYPES: Final[Mapping[str, DocumentFormat]] = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
}

DOCUMENT_EXTENSIONS: Final[Mapping[str, DocumentFormat]] = {
    "pdf": "pdf",
    "csv": "csv",
    "doc": "doc",
    "docx": "docx",
    "xls": "xls",
    "xlsx": "xlsx",
    "html": "html",
    "htm": "html",
    "txt": "txt",
    "md": "md",
    "markdown": "md",
}

_OLE2: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # doc and xls (Compound File Binary)
_ZIP: Final = b"PK\x03\x04"  # docx and xlsx (Office Open XML packages)
_TEXT_PROBE: Final = 8192  # bytes searched for a NUL, as git does to spot binary files


def _text(data: bytes) -> bool:
    return b"\x00" not in data[:_TEXT_PROBE]


# Format -> (what the bytes must look like, said in an error message, the check).
_CONTENT_CHECKS: Final[Mapping[DocumentFormat, tuple[str, Callable[[bytes], bool]]]] = {
    "pdf": ("a PDF file", lambda data: data.startswith(b"%PDF-")),
    "docx": ("a .docx (ZIP) package", lambda data: data.startswith(_ZIP)),
    "xlsx": ("a .xlsx (ZIP) package", lambda data: data.startswith(_ZIP)),
    "doc": ("a legacy Word (OLE2) file", lambda data: data.startswith(_OLE2)),
    "xls": ("a legacy Excel (OLE2) file", lambda data: data.startswith(_OLE2)),
    "csv": ("text", _text),
    "html": ("text", _text),
    "txt": ("text", _text),
    "md": ("text", _text),
}

_NAME_MAX: Final = 200
_NAME_PUNCTUATION: Final = frozenset("-()[]")
_ECHO_LIMIT: Final = 60


def document_name(filename: str | None) -> str:
    """`filename` reduced to the characters Bedrock allows in a document name; may be ""."""
    if not filename:
        return ""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, _ = base.rpartition(".")
    if dot and stem.strip("."):
        base = stem
    # Decompose accented letters and drop the accents: "Résumé" -> "Resume".
    decomposed = unicodedata.normalize("NFKD", base)
    kept = (
        char if (char.isascii() and char.isalnum()) or char in _NAME_PUNCTUATION else " "
        for char in decomposed
        if not unicodedata.combining(char)
    )
    return " ".join("".join(kept).split())[:_NAME_MAX].strip()


class DocumentNames:
    """Hands out the request's document names: sanitized, defaulted, and unique."""

    def __init__(self) -> None:
        self._count = 0
        self._taken: set[str] = set()

    def allocate(self, filename: str | None) -> str:
        self._count += 1
        name = document_name(filename) or f"document-{self._count}"
        candidate, attempt = name, 1
        while candidate.casefold() in self._taken:
            attempt += 1
            suffix = f" ({attempt})"
            candidate = name[: _NAME_MAX - len(suffix)].rstrip() + suffix
        self._taken.add(candidate.casefold())
        return candidate


def document_block(file: FileData, *, param: str, names: DocumentNames) -> DocumentBlock:
    """The Converse document for one `file` part; `param` is the part's JSON path."""
    if file.file_data is None:
        if file.file_id is not None:
            raise UnsupportedParameterError(
                "Files uploaded to OpenAI's Files API cannot be read from Bedrock; send the "
                "document inline as file_data ('data:application/pdf;base64,...').",
                param=f"{param}.file.file_id",
            )
        raise InvalidRequestError(
            "A file part needs file_data ('data:application/pdf;base64,...').",
            param=f"{param}.file.file_data",
        )
    where = f"{param}.file.file_data"
    mime, payload = _split_data_url(file.file_data, where)
    document_format = _format(mime, file.filename, param)
    data = _decode(payload, where)
    expected, check = _CONTENT_CHECKS[document_format]
    if not check(data):
        raise InvalidRequestError(
            f"The file is declared as {document_format} but its bytes are not {expected}.",
            param=where,
        )
    return {
        "format": document_format,
        "name": names.allocate(file.filename),
        "source": {"bytes": data},
    }


def _split_data_url(value: str, where: str) -> tuple[str | None, str]:
    """(mime or None, base64 payload) of a data URL, or of bare base64."""
    scheme, colon, rest = value.partition(":")
    if not colon or scheme.strip().lower() != "data":
        return None, value
    header, comma, payload = rest.partition(",")
    params = header.split(";")
    if not comma or len(params) < 2 or params[-1].strip().lower() != "base64":
        raise InvalidRequestError(
            "file_data must be a base64 data URL ('data:application/pdf;base64,...').",
            param=where,
        )
    return params[0].strip().lower() or None, payload


def _format(mime: str | None, filename: str | None, param: str) -> DocumentFormat:
    if mime is not None and mime in DOCUMENT_MIME_TYPES:
        return DOCUMENT_MIME_TYPES[mime]
    extension = (filename or "").rpartition(".")[2].lower() if "." in (filename or "") else ""
    found = DOCUMENT_EXTENSIONS.get(extension)
    if found is not None:
        return found
    declared = mime or (f".{extension}" if extension else "none")
    supported = ", ".join(dict.fromkeys(DOCUMENT_EXTENSIONS.values()))
    if mime is not None and mime.startswith("image/"):
        supported += "; send images as image_url parts"
    raise InvalidRequestError(
        f"Unsupported document type {declared[:_ECHO_LIMIT]!r}; Bedrock reads {supported}.",
        param=param,
    )


def _decode(payload: str, where: str) -> bytes:
    if not payload:
        raise InvalidRequestError("The file carries no data.", param=where)
    if not payload.isascii() or len(payload) % 4:
        raise InvalidRequestError(
            "file_data is not valid base64 (standard alphabet, padded, no whitespace).",
            param=where,
        )
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise InvalidRequestError(
            "file_data is not valid base64 (standard alphabet, padded, no whitespace).",
            param=where,
        ) from None
