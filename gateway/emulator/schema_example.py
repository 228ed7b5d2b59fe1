"""A JSON value that satisfies a JSON Schema: the arguments of a tool call the request forced.

When a Converse request forces a tool (`toolChoice: {tool: {name}}`, or `{any: {}}`),
Bedrock's model answers with a call to it. So must the emulator, or
`client.chat.completions.parse(...)` and LangChain's `with_structured_output` fail against
`bedrock-gateway demo` (issue 19, item 19). The arguments are built from the tool's input
schema, deterministically: the first `enum` / `const` / `default` / `examples` value if
there is one, else a plain value of the type that meets its bounds (length, minimum,
items), every property of an object filled in. It covers the schemas pydantic and the
OpenAI SDK generate (`$ref` into `$defs`, `anyOf` with null, nested objects and arrays);
it is not a general schema solver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["example_for"]

_MAX_DEPTH = 12
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def example_for(schema: Any, *, name: str = "value") -> Any:
    """A value valid against `schema` (a dict, or True/False as JSON Schema allows)."""
    root = schema if isinstance(schema, Mapping) else {}
    return _value(root, root, name, 0)


def _value(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    if isinstance(ref := schema.get("$ref"), str):
        return _value(_resolve(ref, root), root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    for key in ("enum", "examples"):
        values = schema.get(key)
        if isinstance(values, list) and values:
            return values[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if isinstance(o, Mapping)]
        if options:
            chosen = next((o for o in options if o.get("type") != "null"), options[0])
            return _value(chosen, root, name, depth + 1)
    if isinstance(all_of := schema.get("allOf"), list) and all_of:
        merged: dict[str, Any] = {}
        for part in all_of:
            if isinstance(part, Mapping):
                merged.update((part.get("$ref") and _resolve(part["$ref"], root)) or part)
        return _value(merged, root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {
            key: _value(sub if isinstance(sub, Mapping) else {}, root, key, depth + 1)
            for key, sub in properties.items()
        }
    if kind == "array":
        items = schema.get("items")
        item = _value(items if isinstance(items, Mapping) else {}, root, name, depth + 1)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return _number(schema, 0)
    if kind == "number":
        return _number(schema, 0.5)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _number(schema: Mapping[str, Any], fallback: float) -> Any:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: Any = fallback
    if isinstance(low, int | float):
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    elif isinstance(high, int | float) and value >= high:
        value = high - 1
    return int(value) if schema.get("type") == "integer" else value


def _string(schema: Mapping[str, Any], name: str) -> str:
    text = _FORMATS.get(str(schema.get("format")), f"example {name}")
    low = schema.get("minLength")
    high = schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = text + "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    # Local references only ("#/$defs/Name", "#/definitions/Name"): what generators emit.
    node: Any = root
    for part in ref.removeprefix("#").strip("/").split("/"):
        if not part:
            continue
        node = (
            node.get(part.replace("~1", "/").replace("~0", "~"))
            if isinstance(node, Mapping)
            else None
        )
    return node if isinstance(node, Mapping) else {}
