"""The emulator's STS and control-plane answers, through real aiobotocore clients: the
wire formats (query protocol XML, rest-json listings) must parse as AWS's do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from gateway.emulator.app import BedrockEmulator, create_emulator_app
from gateway.emulator.control import signature
from tests.servers import ServerThread, serve


@pytest.fixture
def emulated() -> Iterator[tuple[BedrockEmulator, ServerThread]]:
    app = create_emulator_app()
    with serve(app) as server:
        yield app, server


def _run(server: ServerThread, service: str, region: str, call: Any) -> Any:
    async def go() -> Any:
        session = AioSession()
        session.set_credentials("AKIDEXAMPLE", "secret")
        async with session.create_client(
            service, region_name=region, endpoint_url=server.url
        ) as client:
            return await call(client)

    return asyncio.run(go())


def test_assume_role_issues_credentials_and_remembers_the_session(emulated: Any) -> None:
    emulator, server = emulated
    answer = _run(
        server,
        "sts",
        "eu-west-1",
        lambda sts: sts.assume_role(
            RoleArn="arn:aws:iam::111122223333:role/r",
            RoleSessionName="bedrock-gateway-ads",
            DurationSeconds=900,
            ExternalId="ext",
            Tags=[{"Key": "team", "Value": "ads"}],
        ),
    )
    key = answer["Credentials"]["AccessKeyId"]
    assert key.startswith("ASIA")
    assert answer["AssumedRoleUser"]["Arn"].endswith("assumed-role/r/bedrock-gateway-ads")
    session = emulator.control.assumed[key]
    assert (session.tags, session.external_id, session.duration_s) == ({"team": "ads"}, "ext", 900)
    (call,) = emulator.control.calls
    assert (call.operation, call.region, call.access_key_id) == (
        "assume-role",
        "eu-west-1",
        "AKIDEXAMPLE",
    )


@pytest.mark.parametrize(
    ("arn", "session_name", "code"),
    [
        ("arn:aws:iam::111122223333:role/untagged", "ok-name", "AccessDenied"),
        ("arn:aws:iam::111122223333:role/r", "bad name!", "ValidationError"),
    ],
)
def test_assume_role_refusals_are_sts_errors(
    emulated: Any, arn: str, session_name: str, code: str
) -> None:
    _, server = emulated
    with pytest.raises(ClientError) as refused:
        _run(
            server,
            "sts",
            "us-east-1",
            lambda sts: sts.assume_role(
                RoleArn=arn, RoleSessionName=session_name, Tags=[{"Key": "team", "Value": "x"}]
            ),
        )
    assert refused.value.response["Error"]["Code"] == code


def test_listings_parse_as_the_control_plane_does(emulated: Any) -> None:
    emulator, server = emulated
    emulator.control.add_inference_profile("team1", "amazon.nova-micro-v1:0", "APPLICATION")

    async def both(client: Any) -> tuple[Any, Any, Any]:
        models = await client.list_foundation_models()
        system = await client.list_inference_profiles(typeEquals="SYSTEM_DEFINED")
        application = await client.list_inference_profiles(typeEquals="APPLICATION")
        return models, system, application

    models, system, application = _run(server, "bedrock", "ap-northeast-1", both)
    ids = [m["modelId"] for m in models["modelSummaries"]]
    assert "anthropic.claude-sonnet-4-5-20250929-v1:0" in ids
    arn = models["modelSummaries"][0]["modelArn"]
    assert arn.startswith("arn:aws:bedrock:ap-northeast-1::foundation-model/")
    assert {p["type"] for p in system["inferenceProfileSummaries"]} == {"SYSTEM_DEFINED"}
    (app_profile,) = application["inferenceProfileSummaries"]
    assert ":application-inference-profile/team1" in app_profile["inferenceProfileArn"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            b"AWS4-HMAC-SHA256 Credential=ASIAX/20261205/us-west-2/bedrock/aws4_request, "
            b"SignedHeaders=host, Signature=abc",
            ("ASIAX", "us-west-2", "bedrock"),
        ),
        (b"Bearer some-api-key", None),
        (b"AWS4-HMAC-SHA256 Credential=broken", None),
    ],
)
def test_signature_reads_the_credential_scope(header: bytes, expected: Any) -> None:
    found = signature([(b"authorization", header)])
    assert (found and (found.access_key_id, found.region, found.service)) == expected
