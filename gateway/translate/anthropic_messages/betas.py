"""Which `anthropic-beta` values reach Bedrock: the operator's list, nothing else.

Bedrock answers 400 "invalid beta flag" to a beta it does not know, and Claude Code adds
betas with most releases (`claude-code-20250219`, `prompt-caching-scope-2026-01-05`, ...):
forwarding whatever a client sends broke every call after each Claude Code update for
LiteLLM's users (BerriAI/litellm issues 16561, 19652, 20021). So only the betas in
`anthropic.betas` travel, as the body's `anthropic_beta`; the rest are dropped and named
in `x-gateway-dropped-betas`, and the call goes on without them.

`DEFAULT_BETAS` are those Bedrock's Claude documentation lists for `anthropic_beta`
(https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html);
docs/guides/claude-code.md keeps the list for operators.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

__all__ = ["DEFAULT_BETAS", "parse_beta_header", "split_betas"]

DEFAULT_BETAS: tuple[str, ...] = (
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
)


def parse_beta_header(values: Iterable[str]) -> list[str]:
    """Every `anthropic-beta` header value (comma-separated lists), trimmed, first seen order."""
    seen: dict[str, None] = {}
    for value in values:
        for item in value.split(","):
            beta = item.strip()
            if beta:
                seen.setdefault(beta, None)
    return list(seen)


def split_betas(requested: Iterable[str], allowed: Collection[str]) -> tuple[list[str], list[str]]:
    """(forwarded, dropped), each in the order the client sent them."""
    forwarded: list[str] = []
    dropped: list[str] = []
    for beta in requested:
        (forwarded if beta in allowed else dropped).append(beta)
    return forwarded, dropped
