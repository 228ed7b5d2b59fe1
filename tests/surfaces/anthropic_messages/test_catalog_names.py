"""The names Claude Code sends resolve in the embedded default catalogue, to Claude on Invoke."""

from __future__ import annotations

import pytest

from gateway.bedrock.catalog import ModelCatalog
from gateway.config import default_config
from gateway.translate.anthropic_messages.invoke import is_claude

CLAUDE_CODE_NAMES = [
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-1",
    "claude-opus-4-1-20250805",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-20241022",
]


@pytest.mark.parametrize("name", CLAUDE_CODE_NAMES)
def test_claude_code_names_resolve_to_claude(name: str) -> None:
    config = default_config()
    model = ModelCatalog(config.models, allow_unlisted=False).resolve(name)
    assert model.kind == "chat"
    assert is_claude(model.bedrock_id), model.bedrock_id
    assert name.startswith(model.public_name)


def test_the_default_betas_are_in_the_default_config() -> None:
    betas = default_config().anthropic.betas
    assert "interleaved-thinking-2025-05-14" in betas
    assert "claude-code-20250219" not in betas  # Bedrock answers "invalid beta flag"
