"""Hypothesis strategies for odd OpenAI requests: mostly right, wrong in one place or many.

A request that is wrong everywhere only ever reaches the first check, so most strategies
start from the shape a client would send and replace parts with something odd: a wrong
type, an empty or huge string, a lone surrogate, a broken data URL, an unknown role.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

CHAT_MODELS = ["claude-3-7-sonnet", "gpt-4o", "nova-micro"]
EMBEDDING_MODELS = ["titan-embed-text-v2", "titan-embed-text-v1", "cohere-en"]

# Characters that break naive code: NUL, a BOM, right-to-left override, astral emoji,
# combining marks, line separators.
ODD_CHARACTERS = ["\x00", "\ufeff", "\u202e", "\U0001f642", "e\u0301", "\u2028"]

# Lone surrogates are legal in a JSON \u escape and cannot be encoded as UTF-8. Kept to a
# few fixed strings: a body carrying one may be refused whole, and then it tests nothing
# else. test_bodies_fuzz.py has cases of its own for them.
LONE_SURROGATES = ["\ud800", "a\udfffb"]

odd_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(ODD_CHARACTERS) | st.characters(), max_size=20).map("".join),
    st.sampled_from(["", " ", "\n", "@emulator {}", "a" * 5_000, "null", "{}", *LONE_SURROGATES]),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)

json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

data_urls = st.one_of(
    st.binary(max_size=64).map(lambda b: "data:image/png;base64," + _b64(PNG_MAGIC + b)),
    st.binary(max_size=64).map(lambda b: "data:image/jpeg;base64," + _b64(b)),
    st.sampled_from(
        [
            "data:image/png;base64,",  # empty payload
            "data:image/png;base64,!!!!",  # not base64
            "data:image/png;base64,iVBORw0KGgo",  # bad padding
            "data:image/png,iVBORw0KGgo=",  # no ;base64
            "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",  # a format Bedrock lacks
            "data:;base64,iVBORw0KGgo=",  # no media type
            "data:",
            "data:image/png;base64",  # no comma
            "data:text/plain;base64,aGVsbG8=",
            "data:application/pdf;base64,JVBERi0xLjQ=",
            "http://127.0.0.1:1/cat.png",  # remote (fetching is off in these tests)
            "file:///etc/passwd",
            "",
            "not a url",
        ]
    ),
    odd_text,
)

# Blank user turns are refused (Bedrock does too), so they are kept rare here.
spoken_text = odd_text.map(lambda text: text if text.strip() else text + "hi")

# Wrong roles: misspelt, empty, not a string, or a lone surrogate.
roles = st.sampled_from(["", "User", "model", "wizard", "function", "\ud800"]) | json_scalars

text_parts = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": odd_text},
        optional={"cache_control": st.just({"type": "ephemeral"})},
    ),
    min_size=1,
    max_size=3,
)

user_parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": spoken_text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": data_urls})},
        optional={"cache_control": st.just({"type": "ephemeral"})},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("file"),
            "file": st.fixed_dictionaries(
                {"file_data": data_urls}, optional={"filename": odd_text, "file_id": odd_text}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("input_audio"),
            "input_audio": st.fixed_dictionaries(
                {"data": st.binary(max_size=16).map(_b64) | odd_text, "format": odd_text}
            ),
        }
    ),
)

user_content = spoken_text | st.lists(user_parts, min_size=1, max_size=3) | odd_text
tool_names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True) | odd_text
tool_arguments = (
    st.sampled_from(['{"city": "Paris"}', "{}", "", "not json", "[1, 2]", "null"]) | odd_text
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A conversation a client could send: system first, turns alternating, tool calls
    answered by tool messages (whose ids may or may not match), text that may be odd."""
    history: list[dict[str, Any]] = []
    if draw(st.booleans()):
        role = draw(st.sampled_from(["system", "developer"]))
        history.append({"role": role, "content": draw(odd_text | text_parts)})
    turns = draw(st.integers(1, 3))
    for turn in range(turns):
        history.append({"role": "user", "content": draw(user_content)})
        if turn == turns - 1 and draw(st.booleans()):
            break  # the usual ending: the user speaks last
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | odd_text)}
        calls = draw(st.lists(st.tuples(odd_text | st.just("call_1"), tool_names), max_size=2))
        if calls:
            assistant["tool_calls"] = [
                {
                    "type": "function",
                    "id": call_id,
                    "function": {"name": name, "arguments": draw(tool_arguments)},
                }
                for call_id, name in calls
            ]
        for field in draw(st.sets(st.sampled_from(["reasoning_content", "reasoning_signature"]))):
            assistant[field] = draw(odd_text)
        history.append(assistant)
        for call_id, _ in calls:
            answered = draw(st.sampled_from([call_id, "call_other"]))
            history.append(
                {"role": "tool", "tool_call_id": answered, "content": draw(odd_text | text_parts)}
            )
    return history


tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": tool_names},
                optional={
                    "description": odd_text,
                    "parameters": st.just({"type": "object", "properties": {}})
                    | st.dictionaries(odd_text, json_values, max_size=3),
                    "strict": st.booleans(),
                },
            ),
        },
        optional={"cache_control": st.just({"type": "ephemeral"})},
    ),
    max_size=3,
)

# Parameters with values the gateway serves (odd strings included)...
SERVED_PARAMETERS: dict[str, st.SearchStrategy[Any]] = {
    "temperature": st.floats(min_value=0, max_value=1),
    "top_p": st.floats(min_value=0, max_value=1),
    "max_tokens": st.integers(min_value=1, max_value=100_000),
    "max_completion_tokens": st.integers(min_value=1, max_value=100_000),
    "stop": odd_text | st.lists(odd_text, max_size=6),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "tools": tools,
    "tool_choice": st.sampled_from(["auto", "none", "required"])
    | st.fixed_dictionaries(
        {"type": st.just("function"), "function": st.fixed_dictionaries({"name": tool_names})}
    ),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}])
    | st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "json_schema": st.fixed_dictionaries(
                {"name": tool_names},
                optional={
                    "schema": st.dictionaries(odd_text, json_values, max_size=3)
                    | st.just({"type": "object", "properties": {"a": {"type": "string"}}}),
                    "strict": st.booleans(),
                },
            ),
        }
    ),
    "reasoning_effort": st.sampled_from(["minimal", "low", "medium", "high"]),
    "user": odd_text,
    "metadata": st.dictionaries(odd_text, odd_text, max_size=3),
    "top_k": st.integers(min_value=1, max_value=500),
    "parallel_tool_calls": st.booleans(),
}

# ... and values at or past the edges, or that Bedrock cannot honour.
EDGE_PARAMETERS: dict[str, st.SearchStrategy[Any]] = {
    "temperature": st.floats(min_value=-1, max_value=3) | st.just(float("nan")),
    "top_p": st.floats(min_value=-1, max_value=2) | st.just(float("inf")),
    "max_tokens": st.integers(min_value=-5, max_value=10**12),
    "max_completion_tokens": st.integers(min_value=-5, max_value=10**12),
    "n": st.integers(min_value=-1, max_value=3),
    "seed": st.integers(min_value=-(2**64), max_value=2**64),
    "logprobs": st.booleans(),
    "presence_penalty": st.floats(min_value=-3, max_value=3),
    "top_k": st.integers(min_value=-1, max_value=10**9),
    "additional_model_request_fields": st.dictionaries(odd_text, json_values, max_size=3),
    "thinking": st.fixed_dictionaries(
        {"type": st.sampled_from(["enabled", "disabled"]), "budget_tokens": json_scalars}
    ),
}


def _mutate(draw: st.DrawFn, body: dict[str, Any]) -> None:
    """Make one thing wrong: a value of another type, a missing or unknown key, anywhere
    from the top level down to a content part."""
    targets: list[dict[str, Any]] = [body]
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            targets.append(message)
            content = message.get("content")
            if isinstance(content, list):
                targets.extend(part for part in content if isinstance(part, dict))
    target = draw(st.sampled_from(targets))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "add" or not target:
        target[draw(odd_text)] = draw(json_values)
    elif action == "delete":
        del target[draw(st.sampled_from(sorted(target)))]
    else:
        target[draw(st.sampled_from(sorted(target)))] = draw(json_values | roles)


@st.composite
def chat_requests(draw: st.DrawFn) -> Any:
    """A chat completion body a client could send, odd in its details, and now and then
    wrong in one or two places."""
    if draw(st.integers(0, 29)) == 0:
        return draw(json_values)  # now and then, anything at all
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(CHAT_MODELS)),
        "messages": draw(conversations()),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(SERVED_PARAMETERS)), unique=True, max_size=4))
    for name in chosen:
        body[name] = draw(SERVED_PARAMETERS[name])
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(EDGE_PARAMETERS)))
        body[name] = draw(EDGE_PARAMETERS[name])
    if draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 2))):
            _mutate(draw, body)
    return body


# Texts to embed: mostly what a client sends (some of it odd, some past a model's limits),
# sometimes token ids or empty strings, which Bedrock models cannot take.
embedding_inputs = st.one_of(
    spoken_text,
    st.lists(spoken_text, min_size=1, max_size=8),
    st.sampled_from([["b"] * 100, "x" * 60_000, "y" * 3000, ["a"] * 2049]),
    st.one_of(
        st.lists(st.integers(min_value=-5, max_value=200_000), min_size=1, max_size=8),
        st.lists(
            st.lists(st.integers(min_value=-5, max_value=200_000), min_size=1, max_size=4),
            min_size=1,
            max_size=4,
        ),
        st.sampled_from([[], [""], "", [[]], ["ok", ""]]),
    ),
)


@st.composite
def embedding_requests(draw: st.DrawFn) -> Any:
    """An embeddings body, usually right in shape, with odd inputs and options, and now
    and then wrong in one place."""
    if draw(st.integers(0, 29)) == 0:
        return draw(json_values)
    model = draw(st.sampled_from(EMBEDDING_MODELS))
    body: dict[str, Any] = {"model": model, "input": draw(embedding_inputs)}
    if draw(st.booleans()):
        body["encoding_format"] = draw(st.sampled_from(["float", "base64"]))
    if draw(st.integers(0, 3)) == 0:
        body["dimensions"] = draw(st.sampled_from([256, 512, 1024, 1536, 0, 3, 10**12]))
    if draw(st.integers(0, 3)) == 0:
        body["user"] = draw(odd_text)
    if model.startswith("cohere") and draw(st.booleans()):
        body["input_type"] = draw(
            st.sampled_from(["search_query", "search_document", "classification"]) | odd_text
        )
    if draw(st.integers(0, 3)) == 0:
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "add":
            body[draw(odd_text)] = draw(json_values)
        elif action == "delete":
            del body[draw(st.sampled_from(sorted(body)))]
        else:
            body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    return body
