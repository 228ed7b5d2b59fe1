"""TLS to Bedrock: the certificate and the host name are both checked.

Certificates are made for each run with the `openssl` command line tool, and the server
is a `ScriptedServer` speaking TLS on 127.0.0.1. Which certificates are trusted comes from
`AWS_CA_BUNDLE`, as it does for every botocore client.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import SSLError as BotoSSLError

from gateway.bedrock.client import AioBedrockClient, BedrockError
from gateway.config import BedrockConfig
from tests.bedrock.scripted import MODEL_ID, REQUEST, ScriptedServer, _Credentials, client_for
from tests.servers import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command to make certificates"
)


def make_certificate(directory: Path, name: str, alt_name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    argv = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt_name}",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    return {
        "loopback": make_certificate(directory, "loopback", "IP:127.0.0.1"),
        "elsewhere": make_certificate(directory, "elsewhere", "DNS:bedrock.example.com"),
    }


async def test_a_trusted_certificate_for_the_host_is_accepted(
    certificates: dict[str, tuple[Path, Path]], monkeypatch: Any
) -> None:
    cert, key = certificates["loopback"]
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    async with ScriptedServer(tls=server_context(cert, key)) as server:
        assert server.url.startswith("https://")
        async with client_for(server) as client:
            for _ in range(2):
                assert (await client.converse(MODEL_ID, REQUEST))["stopReason"] == "end_turn"
        assert server.accepted == 1


@pytest.mark.parametrize(
    ("served", "trusted"),
    [
        ("loopback", "elsewhere"),  # signed by nobody we trust
        ("elsewhere", "elsewhere"),  # trusted, but for another host name
    ],
    ids=["untrusted", "wrong-host"],
)
async def test_a_certificate_that_does_not_check_out_is_refused(
    certificates: dict[str, tuple[Path, Path]], monkeypatch: Any, served: str, trusted: str
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(certificates[trusted][0]))
    async with ScriptedServer(tls=server_context(*certificates[served])) as server:
        async with client_for(server) as client:
            with pytest.raises(BedrockError) as caught:
                await client.converse(MODEL_ID, REQUEST)
            assert caught.value.name == "ConnectionError"
            # botocore's SSLError, raised by aiobotocore for the failed verification.
            assert isinstance(caught.value.__cause__, BotoSSLError)
            assert "certificate verify failed" in str(caught.value.__cause__)
        assert server.received == []


async def test_a_ca_bundle_that_cannot_be_read_fails_https_calls_not_start_up(
    monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    config = BedrockConfig(region="us-east-1", endpoint_url=f"https://127.0.0.1:{free_port()}")
    async with AioBedrockClient(config, credentials=_Credentials()) as client:
        with pytest.raises(BedrockError) as caught:
            await client.converse(MODEL_ID, REQUEST)
        assert caught.value.name == "ConnectionError"
