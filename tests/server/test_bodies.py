"""`json_response`: the same status, headers and body as starlette's `Response` would send."""

from __future__ import annotations

import orjson
import pytest
from starlette.responses import Response

from gateway.server.bodies import json_response

DATA = {"id": "chatcmpl-1", "choices": [{"message": {"content": "héllo"}}]}


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, None),
        (200, {}),
        (200, {"x-gateway-model": "m", "X-Gateway-Dropped-Params": "a,b"}),
        (429, {"Retry-After": "3"}),
        (204, None),  # no content-length for a 204: starlette's rule
        (200, {"Content-Type": "application/problem+json"}),  # the caller's own type
        (200, {"CONTENT-LENGTH": "999"}),  # and length, however spelled
    ],
)
def test_json_response_sends_what_starlette_would(
    status: int, headers: dict[str, str] | None
) -> None:
    ours = json_response(DATA, status=status, headers=headers)
    theirs = Response(
        orjson.dumps(DATA), status_code=status, headers=headers, media_type="application/json"
    )
    assert (ours.status_code, ours.raw_headers, ours.body) == (
        theirs.status_code,
        theirs.raw_headers,
        theirs.body,
    )
    assert ours.background is None


def test_a_lone_surrogate_is_escaped_not_refused() -> None:
    response = json_response({"text": "\ud800"})
    assert response.body == b'{"text":"\\ud800"}'
