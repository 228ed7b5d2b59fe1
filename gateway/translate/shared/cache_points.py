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

Lifetimes. Converse `cachePoint.ttl` is "5m" (Bedrock's default) or "1h". `ttl: "5m"`
sends the plain default point; `ttl: "1h"` a point with `"ttl": "1h"`; any other lifetime
is a 400 naming the `ttl`, or, with `drop_unsupported`, the lifetime is dropped (its path
is listed) and the point keeps the request's default: a shorter-lived cache changes the
cost, not the answer. OpenAI's `prompt_cache_retention: "24h"` asks for the longest
cache there is, so it makes "1h" the default of every point of the request that names no
`ttl` of its own, the `auto_cache_system` one included ("in_memory" keeps 5 minutes).

The `auto_cache_system` model option adds a cache point after the last system block,
unless one is there already or the request already holds `MAX_CACHE_POINTS` (Anthropic's
limit of four breakpoints per request, above which Bedrock rejects it: the option must
never turn a valid request into a failing one).

Cache reads and writes come back in usage as `cacheReadInputTokens` and
`cacheWriteInputTokens`, and `cacheDetails` splits the writes by lifetime (priced apart:
a 1-hour write costs more); `gateway.translate.openai_chat.response.openai_usage` maps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from gateway.errors import UnsupportedParameterError
from gateway.schemas.converse import ConverseRequest
from gateway.schemas.openai import CacheControl

__all__ = [
    "ACCEPTED_CACHE_TTLS",
    "CACHE_RETENTIONS",
    "MAX_CACHE_POINTS",
    "CacheMarks",
    "CachePoint",
    "add_system_cache_point",
    "append_cache_point",
    "cache_point",
    "count_cache_points",
    "is_cache_point",
    "without_repeated_cache_points",
]

BlockT = TypeVar("BlockT", bound=Mapping[str, Any])

ACCEPTED_CACHE_TTLS: Final = frozenset({"5m", "1h"})
# OpenAI `prompt_cache_retention` -> the default lifetime of the request's cache points.
CACHE_RETENTIONS: Final[Mapping[str, str]] = {"in_memory": "5m", "24h": "1h"}
MAX_CACHE_POINTS: Final = 4

CachePoint = dict[str, Any]  # a content, system or tool block: {"cachePoint": {...}}


def cache_point(ttl: str = "5m") -> CachePoint:
    """The cache point block for a lifetime; "5m" is Bedrock's default, sent without `ttl`."""
    if ttl == "5m":
        return {"cachePoint": {"type": "default"}}
    return {"cachePoint": {"type": "default", "ttl": ttl}}


class CacheMarks:
    """Reads the `cache_control` markers of one request; `default_ttl` is its retention."""

    def __init__(self, *, drop: bool, dropped: list[str], default_ttl: str = "5m") -> None:
        self._drop = drop
        self._dropped = dropped
        self.default_ttl = default_ttl

    def requested(self, control: CacheControl | None, param: str) -> CachePoint | None:
        """The cache point an item asks for, or None; `param` is the item's JSON path."""
        if control is None:
            return None
        if control.ttl is None:
            return cache_point(self.default_ttl)
        if control.ttl not in ACCEPTED_CACHE_TTLS:
            where = f"{param}.cache_control.ttl"
            if not self._drop:
                raise UnsupportedParameterError(
                    f"Bedrock caches for '5m' or '1h'; a cache lifetime of {control.ttl!r} "
                    "cannot be requested.",
                    param=where,
                )
            self._dropped.append(where)
            return cache_point(self.default_ttl)
        return cache_point(control.ttl)


def is_cache_point(block: Mapping[str, Any]) -> bool:
    return "cachePoint" in block


def append_cache_point(blocks: list[Any], point: CachePoint | None = None) -> None:
    """A cache point (default: 5 minutes) at the end of `blocks`, unless it is empty or ends
    with one."""
    if blocks and not is_cache_point(blocks[-1]):
        blocks.append(point if point is not None else cache_point())


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


def add_system_cache_point(request: ConverseRequest, ttl: str = "5m") -> None:
    """The `auto_cache_system` option: a cache point after the last system block."""
    system = request.get("system")
    if system and count_cache_points(request) < MAX_CACHE_POINTS:
        append_cache_point(system, cache_point(ttl))
