"""Issue 19 through the real path: OpenAI SDK / httpx -> our app over HTTP -> the emulator.

Each test here is a defect an adversarial review found; it failed before its fix.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pydantic
import pytest

from tests.fullpath.conftest import (
    ADMIN_KEY,
    API_KEY,
    GatewayFactory,
    RunningGateway,
    base_config,
    ledger,
    script,
    sha,
)
from tests.servers import ServerThread

# A leading tab or CR cannot reach the ledger any more (the stores remove control
# characters); tests/usage/test_cli.py checks that CSV guards them too.
FORMULAS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]


def _usage(gateway: RunningGateway, **params: str) -> Any:
    with gateway.http() as http:
        return http.get(
            "/v1/usage", params=params, headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )


def test_usage_csv_neutralizes_formulas_in_caller_text(gateway: RunningGateway) -> None:
    # Item 5: a `user` of `=HYPERLINK(...)` was written as is and ran in a spreadsheet.
    client = gateway.client(API_KEY)
    for user in FORMULAS:
        client.chat.completions.create(
            model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}], user=user
        )
    deadline = time.monotonic() + 10
    rows: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        answer = _usage(gateway, group_by="end_user", format="csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        if sum(int(row["requests"]) for row in rows) >= len(FORMULAS):
            break
        time.sleep(0.05)
    cells = sorted(row["end_user"] for row in rows)
    assert cells == sorted("'" + user for user in FORMULAS)
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("start", "9999-12-31T23:59:59-14:00"),
        ("end", "0001-01-01T00:00:00+01:00"),
    ],
)
def test_usage_times_outside_the_utc_calendar_are_a_400_naming_the_parameter(
    gateway: RunningGateway, param: str, value: str
) -> None:
    # Item 10: this was a 500.
    answer = _usage(gateway, **{param: value})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/v1/embeddings/", "/v1/models/"])
def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_the_host_header(
    gateway: RunningGateway, path: str
) -> None:
    # Item 14: this was a 307 with `Location: http://evil.example/v1/chat/completions`.
    with gateway.http() as http:
        answer = http.request(
            "GET" if path == "/v1/models/" else "POST",
            path,
            json={"model": "claude-3-5-sonnet", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {API_KEY}", "host": "evil.example"},
        )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["error"]["type"] == "not_found_error"


class Weather(pydantic.BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]
    days: int = pydantic.Field(ge=1)


def test_structured_output_parse_works_against_the_emulator(gateway: RunningGateway) -> None:
    # Item 19: `client.chat.completions.parse(...)` failed against `demo` without a script.
    completion = gateway.client(API_KEY).chat.completions.parse(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": "Weather in Paris for three days?"}],
        response_format=Weather,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Weather)
    assert parsed.unit == "celsius" and parsed.days >= 1


def test_a_named_tool_choice_gets_a_call_to_that_tool(gateway: RunningGateway) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
    completion = gateway.client(API_KEY).chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[tool],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "example city", "days": 0}  # type: ignore[union-attr]


def test_a_disabled_key_listed_as_admin_is_refused_everywhere(
    start_gateway: GatewayFactory, emulator: ServerThread, tmp_path: Path
) -> None:
    # Item 2: it became the unrestricted `admin-<digest8>` principal.
    auth = base_config(emulator.url, tmp_path)["auth"]
    auth["admin_keys_sha256"].append(sha("sk-disabled"))  # "gone" is disabled: see harness
    gateway = start_gateway(auth=auth)
    with gateway.http() as http:
        for method, path in (("GET", "/v1/usage"), ("GET", "/v1/models")):
            answer = http.request(method, path, headers={"authorization": "Bearer sk-disabled"})
            assert answer.status_code == 401, path
    with pytest.raises(openai.AuthenticationError):
        gateway.client("sk-disabled").chat.completions.create(
            model="nova-micro", messages=[{"role": "user", "content": "hi"}]
        )
    admin = gateway.client(ADMIN_KEY).models.list()  # the other admin still works
    assert admin.data


def test_access_denied_is_logged_for_the_operator_not_told_to_the_caller(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    # Item 13: Bedrock's text carries the AWS account id and the role ARN.
    leak = "User: arn:aws:sts::123456789012:assumed-role/gw/i-0 is not authorized"
    with (
        caplog.at_level(logging.WARNING, logger="gateway.bedrock"),
        pytest.raises(openai.PermissionDeniedError) as caught,
    ):
        gateway.client(API_KEY).chat.completions.create(
            model="nova-micro",
            messages=[
                {
                    "role": "user",
                    "content": script(error={"type": "AccessDeniedException", "message": leak}),
                }
            ],
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert "123456789012" not in body["message"] and "arn:" not in body["message"]
    assert "amazon.nova-micro-v1:0" in body["message"]
    assert any("123456789012" in record.getMessage() for record in caplog.records)


def _png_header(width: int, height: int) -> bytes:
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


def test_a_disconnect_estimate_sizes_the_image(gateway: RunningGateway) -> None:
    # Item 7: an image counted as 16 characters; a 1,590-token image was recorded as ~10.
    image = "data:image/png;base64," + base64.b64encode(_png_header(1092, 1092)).decode()
    body = {
        "model": "nova-micro",
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": script(reply="one two three four five", delay_ms=200)},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
    }
    with (
        httpx.Client(base_url=gateway.url, timeout=30) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first chunk, long before Bedrock's usage
    (record,) = [r for r in ledger(gateway) if r["route"] == "/v1/chat/completions"]
    assert record["estimated"] == 1
    assert 1590 <= record["input_tokens"] < 1700


def test_embeddings_take_token_ids_as_langchain_sends_them(gateway: RunningGateway) -> None:
    # Item 18: `OpenAIEmbeddings` sends cl100k_base ids; they were refused with 400.
    client = gateway.client(API_KEY)
    texts = ["Hello, world!", "Hello"]
    by_text = client.embeddings.create(model="text-embedding-3-small", input=texts)
    by_ids = client.embeddings.create(
        model="text-embedding-3-small", input=[[9906, 11, 1917, 0], [9906]]
    )
    assert [d.embedding for d in by_ids.data] == [d.embedding for d in by_text.data]
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens
    one = client.embeddings.create(model="titan-embed-text-v2", input=[9906, 11, 1917, 0])
    assert one.data[0].embedding == by_text.data[0].embedding
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input=[[9906, 10**7]])
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "input"


def test_a_messages_disconnect_estimate_sizes_the_image_not_its_base64(
    gateway: RunningGateway,
) -> None:
    # Item 7 on /v1/messages: the estimate was the JSON length of the messages, so a
    # 1 MB image counted as ~350,000 tokens.
    png = _png_header(1092, 1092) + b"\x00" * 1_000_000
    body = {
        "model": "nova-micro",
        "max_tokens": 100,
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": script(reply="one two three four five", delay_ms=200)},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(png).decode(),
                        },
                    },
                ],
            }
        ],
    }
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(base_url=gateway.url, timeout=30) as http,
        http.stream("POST", "/v1/messages", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: content_block_delta"):
                break  # leave before Bedrock's usage arrives
    (record,) = [r for r in ledger(gateway) if r["route"] == "/v1/messages"]
    assert record["estimated"] == 1
    assert 1590 <= record["input_tokens"] < 1700
