"""A Responses stream whose client leaves: Bedrock's stream is released at once, and the
usage record says the numbers are estimates (`client_disconnected`)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fullpath.conftest import API_KEY, RunningGateway, ledger, script
from tests.fullpath.test_disconnect import _established_to, _settle

STREAMS = 5
REPLY = " ".join(["word"] * 60)


def test_leaving_mid_stream_releases_bedrock(gateway: RunningGateway, emulator: Any) -> None:
    gateway.client().responses.create(model="nova-micro", input="warm", store=False)
    baseline = _established_to(emulator.port)
    body = {
        "model": "nova-micro",
        "stream": True,
        "store": False,
        "input": script(reply=REPLY, delay_ms=50),
    }
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for _ in range(STREAMS):
            with client.stream(
                "POST", "/v1/responses", json=body, headers={"authorization": f"Bearer {API_KEY}"}
            ) as response:
                assert response.status_code == 200
                deltas = 0
                for line in response.iter_lines():
                    if '"response.output_text.delta"' in line:
                        deltas += 1
                        if deltas == 3:
                            break
    # 60 words at 50 ms are 3 s of stream: released long before that.
    assert _settle(lambda: _established_to(emulator.port), baseline, timeout_s=2) <= baseline
    rows = [row for row in ledger(gateway) if row["stream"]]
    assert len(rows) == STREAMS
    for row in rows:
        assert (row["status"], row["error_type"], row["estimated"]) == (
            200,
            "client_disconnected",
            1,
        )
        assert 0 < row["output_tokens"] < 60
