"""Token counts from Bedrock's usage: the 1-hour share of cache writes (`cacheDetails`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.pipeline.context import TokenUsage
from gateway.translate.shared.converse_usage import cache_write_1h_tokens

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


def test_messages_usage_reads_the_1h_share_from_either_wire_format() -> None:
    """/v1/messages: Claude's own usage (`cache_creation`) and Converse's (`cacheDetails`)
    give the same split, so 1-hour writes are priced apart on either path."""
    from gateway.translate.anthropic_messages.invoke import MessagesUsage

    claude = MessagesUsage()
    claude.take_anthropic(
        {
            "input_tokens": 3,
            "output_tokens": 5,
            "cache_creation_input_tokens": 2074,
            "cache_creation": {"ephemeral_5m_input_tokens": 74, "ephemeral_1h_input_tokens": 2000},
        }
    )
    converse = MessagesUsage.from_converse(
        {
            "inputTokens": 3,
            "outputTokens": 5,
            "cacheWriteInputTokens": 2074,
            "cacheDetails": [{"inputTokens": 74, "ttl": "5m"}, {"inputTokens": 2000, "ttl": "1h"}],
        }
    )
    assert claude == converse
    assert (claude.cache_write_tokens, claude.cache_write_1h_tokens) == (2074, 2000)
