"""Token counts from Bedrock's usage: the 1-hour share of cache writes (`cacheDetails`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.pipeline.context import TokenUsage
from gateway.usage.record import cache_write_1h_tokens

RECORDED = Path(
    "/work/shared/fixtures/recorded/converse_image_jpeg_cachepoint_claude_sonnet45.json"
)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({}, 0),
        ({"cacheWriteInputTokens": 9}, 0),
        ({"cacheDetails": [{"ttl": "5m", "inputTokens": 9}]}, 0),
        ({"cacheDetails": [{"ttl": "1h", "inputTokens": 4}, {"ttl": "5m", "inputTokens": 5}]}, 4),
        ({"cacheDetails": [{"ttl": "1h", "inputTokens": 4}, {"ttl": "1h", "inputTokens": 2}]}, 6),
        ({"cacheDetails": "garbage"}, 0),
        ({"cacheDetails": [None, {"ttl": "1h"}]}, 0),
    ],
)
def test_one_hour_writes_come_from_cache_details(usage: dict[str, Any], expected: int) -> None:
    assert cache_write_1h_tokens(usage) == expected
    tokens = TokenUsage()
    tokens.take_converse(usage)
    assert tokens.cache_write_1h_tokens == expected


@pytest.mark.skipif(not RECORDED.exists(), reason="needs the shared Bedrock recordings")
def test_a_real_five_minute_write_counts_no_hour() -> None:
    usage = json.loads(RECORDED.read_text())["response"]["body"]["usage"]
    tokens = TokenUsage()
    tokens.take_converse(usage)
    assert (tokens.cache_write_tokens, tokens.cache_write_1h_tokens) == (2074, 0)
