"""Pydantic model of the Anthropic Messages request the gateway accepts (`POST /v1/messages`).

The model checks only what the gateway itself acts on (the model name, the stream flag,
`max_tokens`, the roles and the shape of each message, `metadata.user_id`) and keeps
everything else untouched (`extra="allow"`, content blocks as plain dicts). Claude models
are called with the caller's own body, block for block: Claude Code relies on thinking
signatures, `cache_control` with `ttl` and tool results coming back exactly as it sent
them, and a schema of every block type would have to follow each new Claude release (the
breakage LiteLLM's users report with every Claude Code update). Which top-level fields
reach Bedrock is decided by `gateway.translate.anthropic_messages.invoke`, which names a
field it cannot forward.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AnthropicMessage", "CountTokensRequest", "MessagesRequest", "Metadata"]


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    # "system": a mid-conversation system message (Claude Code, with the
    # mid-conversation-system beta); see `invoke.fold_system_messages`.
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Anthropic documents an opaque string; Claude Code sends a JSON text in it.
    user_id: str | None = None


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)]
    messages: Annotated[list[AnthropicMessage], Field(min_length=1)]
    stream: bool | None = None
    metadata: Metadata | None = None
    system: str | list[dict[str, Any]] | None = None


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens`: a Messages body without `max_tokens` or `stream`."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[AnthropicMessage], Field(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
