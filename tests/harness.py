"""Full-path test harness: the `openai` SDK -> our app over HTTP -> aiobotocore -> emulator.

The fixtures built on it (`emulator`, `start_gateway`, `gateway`) are in tests/conftest.py:
the emulator runs once per session on a loopback port; each test gets its own gateway
(fresh config, metrics registry and SQLite ledger), so tests cannot see each other's usage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from gateway.config import GatewayConfig
from tests.servers import ServerThread

API_KEY = "sk-test-search-alice"
OTHER_KEY = "sk-test-ads-bob"
ADMIN_KEY = "sk-test-admin"
RESTRICTED_KEY = "sk-test-restricted"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    access_key: str = "test"
    secret_key: str = "test"


def base_config(emulator_url: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bedrock": {
            "region": "us-east-1",
            "endpoint_url": emulator_url,
            "retries": {"mode": "standard", "max_attempts": 1},
        },
        "models": [
            {
                "name": "claude-3-5-sonnet",
                "bedrock_id": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "aliases": ["gpt-4o"],
                "pricing": {
                    "input_per_1k": "0.003",
                    "output_per_1k": "0.015",
                    "cache_read_per_1k": "0.0003",
                    "cache_write_per_1k": "0.00375",
                },
            },
            {"name": "nova-micro", "bedrock_id": "amazon.nova-micro-v1:0"},
            {
                "name": "app-profile",
                "bedrock_id": "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123xyz",
            },
            {"name": "broken-model", "bedrock_id": "invalid-model-id"},
            {
                "name": "titan-embed-text-v2",
                "bedrock_id": "amazon.titan-embed-text-v2:0",
                "kind": "embedding",
                "aliases": ["text-embedding-3-small"],
            },
            {
                "name": "titan-embed-text-v1",
                "bedrock_id": "amazon.titan-embed-text-v1",
                "kind": "embedding",
            },
            {"name": "cohere-en", "bedrock_id": "cohere.embed-english-v3", "kind": "embedding"},
            {
                "name": "cohere-multi",
                "bedrock_id": "cohere.embed-multilingual-v3",
                "kind": "embedding",
            },
        ],
        "auth": {
            "keys": [
                {"id": "app1", "key_sha256": sha(API_KEY), "team": "search", "user": "alice"},
                {"id": "app2", "key_sha256": sha(OTHER_KEY), "team": "ads", "user": "bob"},
                {
                    "id": "limited",
                    "key_sha256": sha(RESTRICTED_KEY),
                    "team": "ads",
                    "models": ["nova-micro"],
                },
                {"id": "gone", "key_sha256": sha("sk-disabled"), "disabled": True},
            ],
            "admin_keys_sha256": [sha(ADMIN_KEY)],
        },
        "usage": {
            "store": f"sqlite:///{tmp_path / 'usage.db'}",
            "flush_interval_ms": 20,
            "spill_path": str(tmp_path / "usage.spill.jsonl"),
        },
        "logging": {"format": "text"},
    }
    for key, value in overrides.items():
        config[key] = value
    return config


@dataclass
class RunningGateway:
    server: ServerThread
    app: Any
    config: GatewayConfig

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, key: str = API_KEY, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


GatewayFactory = Callable[..., RunningGateway]


def script(text: str = "", **directive: Any) -> str:
    """A user message carrying an emulator script (see gateway/emulator/SCRIPTING.md)."""
    line = "@emulator " + json.dumps(directive)
    return f"{text}\n{line}" if text else line


def ledger(gateway: RunningGateway) -> list[dict[str, Any]]:
    """Every usage record the gateway wrote, oldest first.

    Stops the gateway first: shutdown flushes the recorder, so what is read is final.
    """
    import sqlite3

    gateway.server.stop()
    path = gateway.config.usage.store.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM usage_records ORDER BY ts, id").fetchall()
    return [dict(row) for row in rows]


class EventList:
    """A `BedrockStream` over events already in hand: the whole answer in one read."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for event in self.events:
            yield event

    async def aclose(self) -> None:
        self.closed = True
