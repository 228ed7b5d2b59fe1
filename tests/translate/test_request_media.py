"""Images and documents in requests: the format tables, names, limits and refusals."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.errors import GatewayError, InvalidRequestError, UnsupportedParameterError
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.openai_chat.request import (
    ConverseCall,
    ModelOptions,
    UnfetchedImageError,
    openai_to_converse_request,
    remote_image_urls,
)
from gateway.translate.shared.documents import (
    DOCUMENT_EXTENSIONS,
    DOCUMENT_MIME_TYPES,
    DocumentNames,
    document_name,
)

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
GIF = b"GIF89a" + b"\x00" * 20
PDF = b"%PDF-1.7\n%%EOF\n"
ZIP = b"PK\x03\x04" + b"\x00" * 26
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 24
TEXT = b"name,value\nx,1\n"

# A sample of bytes each document format accepts.
SAMPLES = {
    "pdf": PDF,
    "docx": ZIP,
    "xlsx": ZIP,
    "doc": OLE2,
    "xls": OLE2,
    "csv": TEXT,
    "html": b"<p>hi</p>",
    "txt": TEXT,
    "md": b"# hi",
}


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": "Look."}, *parts]}


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _file(**file: Any) -> dict[str, Any]:
    return {"type": "file", "file": file}


def _translate(*messages: dict[str, Any], **kwargs: Any) -> ConverseCall:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": list(messages)})
    return openai_to_converse_request(req, model_id=MODEL, **kwargs)


def _blocks(call: ConverseCall, message: int = 0) -> list[Any]:
    return list(call.request["messages"][message]["content"][1:])


# -- images --------------------------------------------------------------------------------


def test_remote_image_urls_lists_each_http_url_of_user_messages_once() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "s"},
                _user(_image("https://a.example/1.png"), _image(_data_url("image/png", PNG))),
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "plain text"},
                _user(_image("HTTP://b.example/2.gif"), _image("https://a.example/1.png")),
            ],
        }
    )
    assert remote_image_urls(req) == [
        ("https://a.example/1.png", "messages[1].content[1].image_url"),
        ("HTTP://b.example/2.gif", "messages[4].content[1].image_url"),
    ]


def test_a_prefetched_image_is_sent_as_its_bytes() -> None:
    call = _translate(
        _user(_image("https://a.example/1.gif")), images={"https://a.example/1.gif": ("gif", GIF)}
    )
    assert _blocks(call) == [{"image": {"format": "gif", "source": {"bytes": GIF}}}]


def test_an_image_url_that_was_not_prefetched_is_a_bug_not_a_400() -> None:
    with pytest.raises(UnfetchedImageError) as info:
        _translate(_user(_image("https://a.example/1.png")), images={})
    assert "messages[0].content[1]" in str(info.value)
    assert not isinstance(info.value, GatewayError)


def test_a_prefetched_image_in_an_unknown_format_is_a_bug() -> None:
    url = "https://a.example/1.bmp"
    with pytest.raises(UnfetchedImageError):
        _translate(_user(_image(url)), images={url: ("bmp", b"BM")})


@pytest.mark.parametrize("inline", [True, False])
def test_images_over_the_models_limit_are_refused(inline: bool) -> None:
    url = _data_url("image/png", PNG) if inline else "https://a.example/1.png"
    images = {} if inline else {url: ("png", PNG)}
    small = ModelOptions(max_image_bytes=len(PNG) - 1)
    with pytest.raises(InvalidRequestError) as info:
        _translate(_user(_image(url)), images=images, options=small)
    assert info.value.param == "messages[0].content[1].image_url"
    assert str(len(PNG) - 1) in info.value.message
    exact = ModelOptions(max_image_bytes=len(PNG))
    assert _blocks(_translate(_user(_image(url)), images=images, options=exact))


# -- documents -----------------------------------------------------------------------------


@pytest.mark.parametrize(("mime", "document_format"), DOCUMENT_MIME_TYPES.items())
def test_document_media_types(mime: str, document_format: str) -> None:
    data = SAMPLES[document_format]
    call = _translate(_user(_file(file_data=_data_url(mime, data), filename="a")))
    assert _blocks(call) == [
        {"document": {"format": document_format, "name": "a", "source": {"bytes": data}}}
    ]


@pytest.mark.parametrize(("extension", "document_format"), DOCUMENT_EXTENSIONS.items())
@pytest.mark.parametrize("header", ["application/octet-stream", "application/zip", None])
def test_document_extensions_decide_when_the_media_type_does_not(
    extension: str, document_format: str, header: str | None
) -> None:
    data = SAMPLES[document_format]
    file_data = base64.b64encode(data).decode() if header is None else _data_url(header, data)
    call = _translate(_user(_file(file_data=file_data, filename=f"Report.{extension.upper()}")))
    assert _blocks(call)[0]["document"]["format"] == document_format
    assert _blocks(call)[0]["document"]["name"] == "Report"


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("report.pdf", "report"),
        ("Q3 report (final) [v2].pdf", "Q3 report (final) [v2]"),
        ("../../etc/passwd.pdf", "passwd"),
        ("C:\\Users\\me\\plan.pdf", "plan"),
        ("Résumé Zoë.pdf", "Resume Zoe"),
        ("archive.tar.gz.pdf", "archive tar gz"),
        ("a_b.c-d.pdf", "a b c-d"),
        ("tabs\tand\n\nnewlines  here.pdf", "tabs and newlines here"),
        (".hidden", "hidden"),
        ("noextension", "noextension"),
        ("   .pdf", ""),
        ("報告書.pdf", ""),
        ("", ""),
        (None, ""),
        ("x" * 300 + ".pdf", "x" * 200),
    ],
)
def test_document_names_are_sanitized(filename: str | None, name: str) -> None:
    assert document_name(filename) == name


def test_document_names_are_defaulted_and_unique_without_regard_to_case() -> None:
    names = DocumentNames()
    allocated = [
        names.allocate(filename)
        for filename in ["a.pdf", "A.txt", None, "a.csv", "document-3.pdf", "", "y" * 250]
    ]
    assert allocated == [
        "a",
        "A (2)",
        "document-3",
        "a (3)",
        "document-3 (2)",
        "document-6",
        "y" * 200,
    ]
    longer = names.allocate("y" * 250)
    assert longer == "y" * 196 + " (2)"
    assert len(longer) == 200


MEDIA_ERRORS: list[tuple[str, dict[str, Any], type[GatewayError], str]] = [
    (
        "image_unpadded_base64",
        _image("data:image/png;base64,iVBORw0KGgo"),
        InvalidRequestError,
        "messages[0].content[1].image_url",
    ),
    (
        "image_bytes_are_html",
        _image(_data_url("image/png", b"<html>404</html>")),
        InvalidRequestError,
        "messages[0].content[1].image_url",
    ),
    (
        "image_unsupported_scheme",
        _image("ftp://example.com/cat.png"),
        InvalidRequestError,
        "messages[0].content[1].image_url",
    ),
    (
        "image_s3_uri",
        _image("s3://bucket/cat.png"),
        InvalidRequestError,
        "messages[0].content[1].image_url",
    ),
    (
        "document_file_id",
        _file(file_id="file-abc123"),
        UnsupportedParameterError,
        "messages[0].content[1].file.file_id",
    ),
    (
        "document_without_data",
        _file(),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
    (
        "document_unsupported_type",
        _file(file_data=_data_url("application/zip", ZIP), filename="bundle.zip"),
        InvalidRequestError,
        "messages[0].content[1]",
    ),
    (
        "document_type_unknown_without_filename",
        _file(file_data=base64.b64encode(PDF).decode()),
        InvalidRequestError,
        "messages[0].content[1]",
    ),
    (
        "document_is_an_image",
        _file(file_data=_data_url("image/png", PNG), filename="scan.png"),
        InvalidRequestError,
        "messages[0].content[1]",
    ),
    (
        "document_pdf_that_is_not",
        _file(file_data=_data_url("application/pdf", b"<html>"), filename="a.pdf"),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
    (
        "document_docx_that_is_not",
        _file(file_data=_data_url("application/octet-stream", PDF), filename="a.docx"),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
    (
        "document_text_that_is_binary",
        _file(file_data=_data_url("text/csv", b"a,b\x00\x01"), filename="a.csv"),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
    (
        "document_bad_base64",
        _file(file_data="data:application/pdf;base64,JVBERi0*", filename="a.pdf"),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
    (
        "document_not_base64_data_url",
        _file(file_data="data:text/plain,hello", filename="a.txt"),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
    (
        "document_empty",
        _file(file_data="data:application/pdf;base64,", filename="a.pdf"),
        InvalidRequestError,
        "messages[0].content[1].file.file_data",
    ),
]


@pytest.mark.parametrize(
    ("part", "error", "param"), [c[1:] for c in MEDIA_ERRORS], ids=[c[0] for c in MEDIA_ERRORS]
)
def test_media_refusals(part: dict[str, Any], error: type[GatewayError], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        _translate(_user(part))
    assert type(info.value) is error
    assert info.value.status == 400
    assert info.value.param == param


@pytest.mark.parametrize(
    "part",
    [_image(_data_url("image/png", PNG)), _file(file_data=_data_url("application/pdf", PDF))],
    ids=["image", "file"],
)
def test_media_in_an_assistant_turn_is_refused(part: dict[str, Any]) -> None:
    assistant = {"role": "assistant", "content": [{"type": "text", "text": "See:"}, part]}
    with pytest.raises(InvalidRequestError) as info:
        _translate({"role": "user", "content": "Hi"}, assistant)
    assert info.value.param == "messages[1].content[1]"
    assert "user messages" in info.value.message


def test_media_is_never_dropped_even_when_dropping_is_allowed() -> None:
    with pytest.raises(UnsupportedParameterError):
        _translate(_user(_file(file_id="file-1")), drop_unsupported=True)
