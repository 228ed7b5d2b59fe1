"""Prompt-cache points: where Converse `cachePoint` blocks go, and which ones the gateway adds.

Bedrock caches a prompt up to each `{"cachePoint": {"type": "default"}}` block, in the
message content, the system list or the tools list. OpenAI's API has no such marker;
Anthropic's `cache_control: {"type": "ephemeral"}` is what Anthropic-compatible clients
send, on content parts and on tool definitions, so that is what the gateway reads:

* on a content part (user or assistant text, image, file) or a system/developer text
  part: a cache point right after the part's block. A marked part that produced no block
  (blank text) still marks its place, unless nothing precedes it in its message or a
  cache point is there already;
* on a tool message's text part: a cache point after that tool result (Bedrock keeps
  tool results first in their turn, so it lands after the turn's last result);
* on a tool (`tools[i].cache_control`): a cache point right after that tool.

`ttl: "5m"` is Bedrock's default and accepted; any other lifetime is a 400 naming the
`ttl`, because the Converse model of this botocore has no field for one. With
`drop_unsupported` the lifetime is dropped instead (its path is listed) and the cache
point is kept with the default lifetime: a shorter-lived cache changes the cost, not
the answer.

The `auto_cache_system` model option adds a cache point after the last system block,
unless one is there already or the request already holds `MAX_CACHE_POINTS` (Anthropic's
limit of four breakpoints per request, above which Bedrock rejects it: the option must
never turn a valid request into a failing one).

Cache reads and writes come back in usage as `cacheReadInputTokens` and
`cacheWriteInputTokens`; `gateway.translate.openai_chat.response.openai_usage` maps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from gateway.errors import UnsupportedParameterError
from gateway.schemas.converse import ConverseRequest
from gateway.schemas.openai import CacheControl

__all__ = [
    "ACCEPTED_CACHE_TTLS",
    "MAX_CACHE_POINTS",
    "CacheMarks",
    "add_system_cache_point",
    "append_cache_point",
    "count_cache_points",
    "is_cache_point",
    "without_repeated_cache_points",
]

BlockT = TypeVar("BlockT", bound=Mapping[str, Any])

ACCEPTED_CACHE_TTLS: Final = frozenset({None, "5m"})
MAX_CACHE_POINTS: Final = 4


class CacheMarks:
    """Reads the `cache_control` markers of one request."""

    def __init__(self, *, drop: bool, dropped: list[str]) -> None:
        self._drop = drop
        self._dropped = dropped

    def requested(self, control: CacheControl | None, param: str) -> bool:
        """Whether an item asks for a cache point; `param` is the item's JSON path."""
        if control is None:
            return False
        if control.ttl not in ACCEPTED_CACHE_TTLS:
            where = f"{param}.cache_control.ttl"
            if not self._drop:
                raise UnsupportedParameterError(
                    f"A cache lifetime of {control.ttl!r} cannot be requested through this "
                    "gateway; leave 'ttl' out for Bedrock's default of five minutes.",
                    param=where,
                )
            self._dropped.append(where)
        return True


def is_cache_point(block: Mapping[str, Any]) -> bool:
    return "cachePoint" in block


def append_cache_point(blocks: list[Any]) -> None:
    """A cache point at the end of `blocks`, unless it is empty or ends with one."""
    if blocks and not is_cache_point(blocks[-1]):
        blocks.append({"cachePoint": {"type": "default"}})


def without_repeated_cache_points(blocks: Sequence[BlockT]) -> list[BlockT]:
    """`blocks` with no cache point directly after another: the second one marks nothing."""
    return [
        block
        for i, block in enumerate(blocks)
        if not (is_cache_point(block) and i > 0 and is_cache_point(blocks[i - 1]))
    ]


def count_cache_points(request: ConverseRequest) -> int:
    lists: list[Sequence[Mapping[str, Any]]] = [request.get("system", [])]
    lists.extend(message["content"] for message in request.get("messages", []))
    if "toolConfig" in request:
        lists.append(request["toolConfig"]["tools"])
    return sum(is_cache_point(block) for blocks in lists for block in blocks)


def add_system_cache_point(request: ConverseRequest) -> None:
    """The `auto_cache_system` option: a cache point after the last system block."""
    system = request.get("system")
    if system and count_cache_points(request) < MAX_CACHE_POINTS:
        append_cache_point(system)
