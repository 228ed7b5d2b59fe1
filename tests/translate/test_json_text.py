"""`parse_json` gives exactly what `json.loads` gives: the same value, or the same error.

The cases are those where orjson and the standard library part ways (NaN, big integers,
lone surrogates, deep nesting), plus a differential fuzz over JSON values and over
arbitrary text built from JSON's own characters.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.translate.shared.json_text import parse_json


def _outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        value = parse(text)
    except json.JSONDecodeError as exc:
        return "JSONDecodeError", (exc.msg, exc.pos)
    except RecursionError:
        return "RecursionError", None
    except ValueError as exc:
        return "ValueError", str(exc)
    # repr tells nan, -0.0, 1 and 1.0 and True apart, and keeps the order of keys.
    return "value", repr(value)


def _assert_same(text: str) -> None:
    assert _outcome(parse_json, text) == _outcome(json.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        '{"path": "src/a.py", "limit": 50}',
        '{"command": ["bash", "-lc", "ls"], "timeout": 10}',
        '{"todos": [{"content": "x", "status": "pending"}]}',
        '{"a": NaN}',
        '{"a": Infinity, "b": -Infinity}',
        "NaN",
        '{"a": 1e400}',
        "-1e400",
        '{"a": 18446744073709551616}',
        '{"a": 18446744073709551615}',
        '{"a": -9223372036854775809}',
        "-9223372036854775809",
        '{"a": [1, -99999999999999999999]}',
        '{"a": {"b": [184467440737095516160]}}',
        '{"a": 9.3e18, "b": -9.3e18}',
        '{"a": 1.5, "b": 1e-400, "c": 2.5e-324}',
        '{"a": ' + "1" * 5000 + "}",
        '{"a": "\\ud800"}',
        '{"a": "\\udfff\\ud800"}',
        '{"a": "\ud800"}',
        '{"\\ud83d\\ude00": "\\u0000"}',
        '{"a": 1, "a": 2}',
        "\ufeff{}",
        '{"a": "\x01"}',
        '{"a": [1,]}',
        '{"a": 01}',
        "{'a': 1}",
        '{"a": 1} x',
        " \t\n{}\r\n",
        "\u00a0{}",
        "",
        "   ",
        "[1, 2]",
        '"text"',
        "true",
        "null",
        "[" * 10 + "]" * 10,
        '{"a": ' * 5 + "1" + "}" * 5,
        "[" * 600 + "]" * 600,
        "[" * 5000 + "]" * 5000,
    ],
)
def test_parse_json_is_json_loads(text: str) -> None:
    _assert_same(text)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=_values, ensure_ascii=st.booleans())
def test_parse_json_agrees_on_json_values(value: Any, ensure_ascii: bool) -> None:
    # allow_nan: json.dumps writes NaN and Infinity, which json.loads reads back.
    _assert_same(json.dumps(value, ensure_ascii=ensure_ascii))


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet='{}[]:,"\\ -+.0123456789eEtrufalsnNIy\ud800\t\n\x01a'))
def test_parse_json_agrees_on_any_text(text: str) -> None:
    _assert_same(text)


def test_nan_stays_nan() -> None:
    value = parse_json('{"a": NaN}')
    assert math.isnan(value["a"])
