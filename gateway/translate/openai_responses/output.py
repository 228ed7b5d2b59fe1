"""The Responses `output` items, built the same way whether the answer streams or not.

Why one builder for both: `client.responses.stream(...).get_final_response()` must equal
the non-streamed response for the same answer, and Codex rebuilds its history from the
streamed `response.output_item.done` items. So the non-streaming translator feeds whole
Converse blocks through the same steps the stream translator feeds deltas through, and
the items cannot drift apart. With `events` set, every step also records the stream
events it implies (without `sequence_number`, which the encoder numbers).

Items, in order of first appearance:

* `reasoning`: one per run of reasoning blocks. `content` holds the reasoning text as
  `reasoning_text`; with a summary asked for (`reasoning.summary`), `summary` holds the
  same text as `summary_text` (Bedrock returns no separate summary; for Claude 4 models
  the thinking it returns is itself a summary). With `include:
  ["reasoning.encrypted_content"]`, `encrypted_content` carries text, signature and
  redacted blocks for the next request (`gateway.translate.openai_responses.
  reasoning_codec`). Without it the encoding is still made (a stored conversation needs
  it) but kept in `OutputItems.encrypted`, out of what the client sees.
* `message`: one per run of text blocks, a single `output_text` part. The answer of the
  structured-output tool (`gateway.translate.shared.structured`) is such a text, so
  `client.responses.parse` reads it.
* `function_call`: one per tool call; a flattened namespaced name is split back into
  `name` and `namespace`, a renamed tool gets the client's name back.
* `custom_tool_call`: a call to a custom (free-form) tool, its `input` the raw text of the
  stand-in function's one argument. Its input is sent whole when the call ends (one
  `response.custom_tool_call_input.delta`, then `.done`): the argument arrives as JSON
  fragments, and a fragment can end inside an escape.

Empty text never opens a message (gpt-oss sends empty deltas); a call without input gets
`"{}"` as arguments, so they always parse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.translate.openai_responses.reasoning_codec import Reasoning, encode_reasoning
from gateway.translate.openai_responses.tools import CUSTOM_INPUT

__all__ = ["Event", "OutputItems"]

Event = dict[str, Any]


@dataclass(slots=True)
class _Item:
    index: int
    item: dict[str, Any]
    kind: str  # "reasoning" | "message" | "function_call" | "custom_tool_call"
    text: list[str] = field(default_factory=list)
    signature: str | None = None
    redacted: list[str] = field(default_factory=list)
    has_arguments: bool = False
    open: bool = True


class OutputItems:
    """The output items of one response; see the module docstring."""

    def __init__(
        self,
        *,
        response_id: str,
        tool_names: Mapping[str, str] | None = None,
        namespaced: Mapping[str, tuple[str, str]] | None = None,
        custom: Collection[str] = (),
        summary: bool = False,
        reasoning_key: bytes | None = None,
        expose_reasoning: bool = True,
        events: list[Event] | None = None,
    ) -> None:
        self._base = response_id.removeprefix("resp_")
        self._tool_names: Mapping[str, str] = tool_names or {}
        self._namespaced: Mapping[str, tuple[str, str]] = namespaced or {}
        self._custom = custom
        self._summary = summary
        self._key = reasoning_key  # None: no encrypted_content
        self._expose = expose_reasoning  # False: kept in `encrypted` only (for the store)
        self.encrypted: dict[str, str] = {}  # reasoning item id -> its encrypted_content
        self._events = events
        self._emit: Callable[[Event], None] = events.append if events is not None else _drop
        self.items: list[dict[str, Any]] = []
        self._current: _Item | None = None  # the open reasoning or message item
        self._calls: dict[Any, _Item] = {}
        self.output_chars = 0

    # -- text -----------------------------------------------------------------------------

    def text(self, text: str) -> None:
        if not text:
            return
        self.output_chars += len(text)
        current = self._open("message")
        if not current.text and self._events is not None:
            self._emit(
                {
                    "type": "response.content_part.added",
                    "item_id": current.item["id"],
                    "output_index": current.index,
                    "content_index": 0,
                    "part": _text_part(""),
                }
            )
        current.text.append(text)
        if self._events is not None:
            self._emit(
                {
                    "type": "response.output_text.delta",
                    "item_id": current.item["id"],
                    "output_index": current.index,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": [],
                }
            )

    def continue_text(self, text: str) -> tuple[str, int] | None:
        """`text` added to the open message item when that needs no event but its delta
        (the item and its text part are already announced): the item's id and output
        index, for the caller to write that delta itself. None, and nothing done, when
        `text` needs the general path (`text`)."""
        current = self._current
        if current is None or current.kind != "message" or not current.text or not text:
            return None
        self.output_chars += len(text)
        current.text.append(text)
        return current.item["id"], current.index

    # -- reasoning ------------------------------------------------------------------------

    def reasoning_text(self, text: str) -> None:
        if not text:
            return
        self.output_chars += len(text)
        current = self._open("reasoning")
        first = not current.text
        current.text.append(text)
        if self._events is None:
            return
        ids = {"item_id": current.item["id"], "output_index": current.index}
        if first and self._summary:
            part = {"type": "summary_text", "text": ""}
            self._emit(
                {
                    "type": "response.reasoning_summary_part.added",
                    **ids,
                    "summary_index": 0,
                    "part": part,
                }
            )
        self._emit(
            {"type": "response.reasoning_text.delta", **ids, "content_index": 0, "delta": text}
        )
        if self._summary:
            self._emit(
                {
                    "type": "response.reasoning_summary_text.delta",
                    **ids,
                    "summary_index": 0,
                    "delta": text,
                }
            )

    def reasoning_signature(self, signature: str) -> None:
        current = self._open("reasoning")
        if current.signature is None and signature:
            current.signature = signature

    def reasoning_redacted(self, blob: str) -> None:
        self._open("reasoning").redacted.append(blob)

    # -- tool calls -----------------------------------------------------------------------

    def call_start(self, key: Any, call_id: str, bedrock_name: str) -> None:
        if key in self._calls:
            return
        self._close_current()
        name = self._tool_names.get(bedrock_name, bedrock_name)
        n = len(self.items)
        kind = "custom_tool_call" if name in self._custom else "function_call"
        if kind == "custom_tool_call":
            item: dict[str, Any] = {
                "id": f"ctc_{self._base}_{n}",
                "type": kind,
                "call_id": call_id,
                "name": name,
                "input": "",
            }
        else:
            item = {
                "id": f"fc_{self._base}_{n}",
                "type": kind,
                "status": "in_progress",
                "arguments": "",
                "call_id": call_id,
                "name": name,
            }
        if name in self._namespaced:
            item["namespace"], item["name"] = self._namespaced[name]
        call = self._calls[key] = _Item(index=n, item=item, kind=kind)
        self.items.append(item)
        if self._events is not None:
            self._emit(
                {
                    "type": "response.output_item.added",
                    "output_index": call.index,
                    "item": dict(item),
                }
            )

    def call_arguments(self, key: Any, fragment: str) -> None:
        call = self._calls.get(key)
        if call is None or not call.open or not fragment:
            return
        self.output_chars += len(fragment)
        call.has_arguments = True
        call.text.append(fragment)
        if self._events is not None and call.kind == "function_call":
            self._emit(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": call.item["id"],
                    "output_index": call.index,
                    "delta": fragment,
                }
            )

    def call_stop(self, key: Any) -> None:
        call = self._calls.get(key)
        if call is not None and call.open:
            self._close(call)

    @property
    def has_calls(self) -> bool:
        return bool(self._calls)

    # -- the end --------------------------------------------------------------------------

    def finish(self) -> list[dict[str, Any]]:
        """Close every open item; the finished `output` list."""
        self._close_current()
        for call in self._calls.values():
            if call.open:
                self._close(call)
        return self.items

    def _open(self, kind: str) -> _Item:
        current = self._current
        if current is not None and current.kind == kind:
            return current
        self._close_current()
        n = len(self.items)
        if kind == "message":
            item: dict[str, Any] = {
                "id": f"msg_{self._base}_{n}",
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
        else:
            item = {"id": f"rs_{self._base}_{n}", "type": "reasoning", "summary": []}
        current = self._current = _Item(index=n, item=item, kind=kind)
        self.items.append(item)
        if self._events is not None:  # (a whole answer has no events: build none)
            self._emit(
                {"type": "response.output_item.added", "output_index": n, "item": dict(item)}
            )
        return current

    def _close_current(self) -> None:
        if self._current is not None:
            self._close(self._current)
            self._current = None

    def _close(self, entry: _Item) -> None:
        entry.open = False
        item = entry.item
        ids = {"item_id": item["id"], "output_index": entry.index}
        text = "".join(entry.text)
        if entry.kind == "message":
            part = _text_part(text)
            item["content"] = [part]
            item["status"] = "completed"
            if self._events is not None:
                self._emit(
                    {
                        "type": "response.output_text.done",
                        **ids,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }
                )
                self._emit(
                    {"type": "response.content_part.done", **ids, "content_index": 0, "part": part}
                )
        elif entry.kind == "custom_tool_call":
            item["input"] = _custom_input(text)
            if self._events is not None:
                if item["input"]:
                    self._emit(
                        {
                            "type": "response.custom_tool_call_input.delta",
                            **ids,
                            "delta": item["input"],
                        }
                    )
                self._emit(
                    {"type": "response.custom_tool_call_input.done", **ids, "input": item["input"]}
                )
        elif entry.kind == "function_call":
            item["arguments"] = text if entry.has_arguments else "{}"
            item["status"] = "completed"
            if self._events is not None:
                if not entry.has_arguments:
                    self._emit(
                        {"type": "response.function_call_arguments.delta", **ids, "delta": "{}"}
                    )
                self._emit(
                    {
                        "type": "response.function_call_arguments.done",
                        **ids,
                        "arguments": item["arguments"],
                    }
                )
        else:
            self._close_reasoning(entry, text, ids)
        if self._events is not None:
            self._emit(
                {"type": "response.output_item.done", "output_index": entry.index, "item": item}
            )

    def _close_reasoning(self, entry: _Item, text: str, ids: dict[str, Any]) -> None:
        item = entry.item
        if entry.text:
            item["content"] = [{"type": "reasoning_text", "text": text}]
            if self._summary:
                item["summary"] = [{"type": "summary_text", "text": text}]
        if self._key is not None:
            reasoning = Reasoning(
                text=text if entry.text or entry.signature else None,
                signature=entry.signature,
                redacted=tuple(entry.redacted),
            )
            encrypted = self.encrypted[item["id"]] = encode_reasoning(reasoning, key=self._key)
            if self._expose:
                item["encrypted_content"] = encrypted
        if self._events is None or not entry.text:
            return
        self._emit(
            {"type": "response.reasoning_text.done", **ids, "content_index": 0, "text": text}
        )
        if self._summary:
            part = {"type": "summary_text", "text": text}
            self._emit(
                {
                    "type": "response.reasoning_summary_text.done",
                    **ids,
                    "summary_index": 0,
                    "text": text,
                }
            )
            self._emit(
                {
                    "type": "response.reasoning_summary_part.done",
                    **ids,
                    "summary_index": 0,
                    "part": part,
                }
            )


def _custom_input(arguments: str) -> str:
    """The free-form input of a custom tool's call: its stand-in function's one argument
    (`gateway.translate.openai_responses.tools`); what the model wrote, if not that."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return str(value[CUSTOM_INPUT])
    return arguments


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _drop(event: Event) -> None:
    return None
