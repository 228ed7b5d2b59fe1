"""BEDROCK_ERRORS, one row per Bedrock exception and transport failure."""

from __future__ import annotations

import botocore.session
import pytest

from gateway.errors import UpstreamError
from gateway.translate.shared.errors import BEDROCK_ERRORS, access_denied_detail, to_upstream_error


@pytest.mark.parametrize(
    ("name", "status", "type_", "code", "retryable"),
    [
        ("ValidationException", 400, "invalid_request_error", "invalid_request", False),
        ("AccessDeniedException", 403, "permission_error", "model_access_denied", False),
        ("ResourceNotFoundException", 404, "not_found_error", "model_not_found", False),
        ("ThrottlingException", 429, "rate_limit_error", "rate_limit_exceeded", True),
        ("ServiceQuotaExceededException", 429, "rate_limit_error", "rate_limit_exceeded", True),
        ("ModelTimeoutException", 504, "server_error", "model_timeout", False),
        ("ModelNotReadyException", 503, "server_error", "model_not_ready", True),
        ("ServiceUnavailableException", 503, "server_error", "service_unavailable", True),
        ("ModelErrorException", 502, "server_error", "model_error", False),
        ("InternalServerException", 502, "server_error", "upstream_server_error", False),
        ("ModelStreamErrorException", 502, "server_error", "model_stream_error", False),
        ("ConnectionError", 502, "server_error", "upstream_unreachable", True),
        ("ConnectTimeout", 504, "server_error", "upstream_connect_timeout", True),
        ("ReadTimeout", 504, "server_error", "upstream_read_timeout", False),
    ],
)
def test_bedrock_errors(name: str, status: int, type_: str, code: str, retryable: bool) -> None:
    mapping = BEDROCK_ERRORS[name]
    assert (mapping.status, mapping.type, mapping.code, mapping.retryable) == (
        status,
        type_,
        code,
        retryable,
    )

    error = to_upstream_error(name, "Bedrock said no.")
    assert isinstance(error, UpstreamError)
    assert (error.status, error.type, error.code, error.bedrock_error) == (
        status,
        type_,
        code,
        name,
    )
    # AccessDenied alone keeps Bedrock's text out (it names the AWS account).
    assert ("Bedrock said no." in error.message) == (name != "AccessDeniedException")
    assert error.to_openai() == {
        "error": {"message": error.message, "type": type_, "param": None, "code": code}
    }
    assert ("retry-after" in error.headers) == (status == 429)


def test_every_modelled_exception_has_a_row() -> None:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    names = {
        error.name
        for operation in ("Converse", "ConverseStream")
        for error in model.operation_model(operation).error_shapes
    }
    stream = model.operation_model("ConverseStream").output_shape.members["stream"]
    names |= {
        member[:1].upper() + member[1:]
        for member, shape in stream.members.items()
        if shape.metadata.get("exception")
    }
    assert names <= set(BEDROCK_ERRORS)
    assert "ModelStreamErrorException" in names


def test_access_denied_blames_the_gateway_identity_not_the_caller() -> None:
    error = to_upstream_error(
        "AccessDeniedException", access_denied_detail("amazon.nova-micro-v1:0")
    )
    assert error.message == (
        "The gateway's AWS credentials are not allowed to call model 'amazon.nova-micro-v1:0'"
        " (Bedrock AccessDeniedException). Ask the gateway operator to enable access to it"
        " in Bedrock."
    )


def test_access_denied_never_passes_on_bedrocks_own_text() -> None:
    # Issue 19, item 13: Bedrock's message names the account id and the role ARN.
    leak = (
        "User: arn:aws:sts::123456789012:assumed-role/gw-role/i-0abc is not authorized to"
        " perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::model/x"
    )
    error = to_upstream_error("AccessDeniedException", leak)
    assert "123456789012" not in error.message and "arn:" not in error.message
    assert "this model" in error.message
    assert (
        "123456789012" not in to_upstream_error("accessDeniedException", "model 'x' 1234").message
    )


def test_throttling_defaults_to_one_second_retry_after() -> None:
    error = to_upstream_error("ThrottlingException", "Too many requests")
    assert error.retry_after_s == 1.0
    assert error.headers == {"retry-after": "1"}


def test_an_explicit_retry_after_wins() -> None:
    error = to_upstream_error("ThrottlingException", "slow down", retry_after_s=2.5)
    assert error.headers == {"retry-after": "3"}
    unavailable = to_upstream_error("ServiceUnavailableException", "busy", retry_after_s=4)
    assert unavailable.headers == {"retry-after": "4"}


def test_unknown_errors_are_502_and_keep_their_name() -> None:
    error = to_upstream_error("BrandNewException", "something new")
    assert (error.status, error.type, error.code) == (502, "server_error", "upstream_error")
    assert error.bedrock_error == "BrandNewException"
    assert "BrandNewException" in error.message
    assert error.headers == {}


def test_event_stream_exception_names_are_normalised() -> None:
    error = to_upstream_error("throttlingException", "Too many tokens")
    assert error.bedrock_error == "ThrottlingException"
    assert error.status == 429


def test_an_empty_bedrock_message_still_says_something() -> None:
    error = to_upstream_error("ModelErrorException", "  ")
    assert error.message == "Bedrock ModelErrorException: no message"


def test_braces_in_bedrock_messages_are_kept_as_text() -> None:
    error = to_upstream_error("ValidationException", "bad value {detail} in {name}")
    assert error.message == "Bedrock ValidationException: bad value {detail} in {name}"
