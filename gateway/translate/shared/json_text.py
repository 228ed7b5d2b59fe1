"""JSON text read exactly as `json.loads` reads it, at orjson's speed when that is safe.

Why: tool-call arguments come as JSON text inside the request, one string per call, and an
agent's history resends dozens of them on every turn; `json.loads` was the largest single
cost of translating such a request. orjson reads the same text several times faster, but
it does not always agree with the standard library:

* it refuses `NaN`, `Infinity` and `-Infinity`, numbers beyond the float range, lone
  surrogates (escaped or raw), and more than 1024 levels of nesting; `json.loads` returns
  nan, inf, the surrogate, and nests until its recursion limit;
* it reads an integer beyond 64 bits as a float, where `json.loads` keeps the exact int.

So `parse_json` keeps orjson's value only when it is made of objects, arrays, strings,
integers, booleans, nulls and floats of magnitude below 2**63, nested at most
`_ORJSON_MAX_DEPTH` levels below the top: such a value is what `json.loads` makes of the
same text (both read strict RFC 8259 JSON, keep the last of repeated keys and round
floats correctly, and an integer orjson could not hold would show as a large float).
Anything else, including every text orjson refuses, is read again by `json.loads`, whose
value or exception is returned (orjson's parse is then wasted: a fraction of the
standard library's). Tool arguments are nearly always such shallow values (paths,
commands, code); checking deeper ones in Python would cost about what the standard
library's own parse does. `tests/translate/test_json_text.py` holds the
cases where the two parsers differ and a differential fuzz.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

import orjson

__all__ = ["parse_json"]

# Values that read the same from both parsers.
_PLAIN: Final = frozenset({str, int, bool, type(None)})
# orjson reads integers outside [-2**63, 2**64) as floats; no such float is below this.
_ROUNDED_INTEGER: Final = float(2**63)
# How many levels of containers below the top one orjson's value is trusted for
# (`{"command": ["bash", "-lc", "ls"]}` takes one). Checking deeper values in Python costs
# about what the standard library's parse does, so they go to it.
_ORJSON_MAX_DEPTH: Final = 1


def parse_json(text: str) -> Any:
    """`json.loads(text)`: the same value, or the same exception (see the module docstring)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    kind = type(value)
    if kind is dict:
        if _is_plain(value.values(), _ORJSON_MAX_DEPTH):
            return value
    elif kind is list:
        if _is_plain(value, _ORJSON_MAX_DEPTH):
            return value
    elif kind is not float or -_ROUNDED_INTEGER < value < _ROUNDED_INTEGER:
        return value
    return json.loads(text)


def _is_plain(children: Iterable[Any], depth: int) -> bool:
    """Whether `children` (a container's values) read the same from both parsers, looking
    `depth` levels of containers further down.

    A plain loop: for the few values of a tool call it beats building a set of types.
    """
    for child in children:
        kind = type(child)
        if kind in _PLAIN:
            continue
        if kind is dict:
            if depth == 0 or not _is_plain(child.values(), depth - 1):
                return False
        elif kind is list:
            if depth == 0 or not _is_plain(child, depth - 1):
                return False
        elif not -_ROUNDED_INTEGER < child < _ROUNDED_INTEGER:  # a float
            return False
    return True
