"""Shared set-up of the `/v1/messages` full-path tests: the Anthropic SDK at our gateway.

The models are those of `base_config` plus Claude 4.5 under the names Claude Code sends
(`claude-sonnet-4-5`, the dated id as an alias), priced so that cost checks are exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic

from tests.harness import API_KEY, RunningGateway, base_config

SONNET = "claude-sonnet-4-5"
SONNET_DATED = "claude-sonnet-4-5-20250929"
SONNET_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_PRICING = {
    "input_per_1k": "0.003",
    "output_per_1k": "0.015",
    "cache_read_per_1k": "0.0003",
    "cache_write_per_1k": "0.00375",
}


def messages_models(emulator_url: str, tmp_path: Path) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = list(base_config(emulator_url, tmp_path)["models"])
    models.append(
        {
            "name": SONNET,
            "bedrock_id": SONNET_ID,
            "aliases": [SONNET_DATED],
            "pricing": SONNET_PRICING,
        }
    )
    return models


def new_client(
    gateway: RunningGateway, key: str | None = API_KEY, **kwargs: Any
) -> anthropic.Anthropic:
    """The official Anthropic SDK at the gateway, no retries (each call is one request)."""
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, **kwargs)
