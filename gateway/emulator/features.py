"""The Converse request fields of 2026, as the emulator checks and answers them.

Bedrock validates these server side, so the emulator does too (a ValidationException with
Bedrock's kind of message), which lets tests prove the gateway sends what Bedrock accepts:

* `serviceTier`: `{"type": priority | default | flex | reserved}`; the answer names the
  tier it was served on (`serviceTier` in the Converse body and the stream's metadata).
* `outputConfig.textFormat`: type `json_schema` with `structure.jsonSchema.schema`, the
  schema as a JSON string of an object schema; the reply is then JSON that fits it
  (`schema_sample`), unless the directive scripts one. `outputConfig.effort`: low,
  medium, high, xhigh or max.
* `requestMetadata`: 1..16 entries, keys of 1..256 and values of 0..256 characters of
  `[a-zA-Z0-9\\s:_@$#=/+,-.]`.
* `cachePoint.ttl`: "5m" or "1h"; the lifetime of the request's first cache point is the
  `ttl` of the scripted cache writes in `usage.cacheDetails` (Anthropic requires longer
  lifetimes before shorter ones, so the first point is the longest).

No I/O; `script.py` calls `read_features` once per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.emulator.errors import ServiceError

__all__ = ["Features", "read_features", "schema_sample"]

SERVICE_TIERS: Final = ("priority", "default", "flex", "reserved")
EFFORTS: Final = ("low", "medium", "high", "xhigh", "max")
CACHE_TTLS: Final = ("5m", "1h")
_METADATA_TEXT: Final = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]*")
_MAX_SAMPLE_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class Features:
    service_tier: str | None = None  # the requested tier, None when not asked for
    json_schema: dict[str, Any] | None = None  # outputConfig.textFormat's schema
    effort: str | None = None
    cache_ttl: str = "5m"  # the lifetime of the request's first cache point


def _invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def read_features(body: Mapping[str, Any]) -> Features:
    """Check the 2026 fields of a Converse body; raises ServiceError as Bedrock would."""
    _check_metadata(body.get("requestMetadata"))
    return Features(
        service_tier=_service_tier(body.get("serviceTier")),
        json_schema=_json_schema(body.get("outputConfig")),
        effort=_effort(body.get("outputConfig")),
        cache_ttl=_first_cache_ttl(body),
    )


def _service_tier(value: Any) -> str | None:
    if value is None:
        return None
    tier = value.get("type") if isinstance(value, Mapping) else None
    if tier not in SERVICE_TIERS:
        raise _invalid(
            f"1 validation error detected: Value '{tier}' at 'serviceTier.type' failed to "
            f"satisfy constraint: Member must satisfy enum value set: [{', '.join(SERVICE_TIERS)}]"
        )
    return str(tier)


def _json_schema(output: Any) -> dict[str, Any] | None:
    if not isinstance(output, Mapping) or output.get("textFormat") is None:
        return None
    text_format = output["textFormat"]
    if not isinstance(text_format, Mapping) or text_format.get("type") != "json_schema":
        raise _invalid("outputConfig.textFormat.type must be json_schema.")
    structure = text_format.get("structure")
    definition = structure.get("jsonSchema") if isinstance(structure, Mapping) else None
    raw = definition.get("schema") if isinstance(definition, Mapping) else None
    if not isinstance(raw, str):
        raise _invalid("outputConfig.textFormat.structure.jsonSchema.schema must be a string.")
    try:
        schema = json.loads(raw)
    except ValueError:
        raise _invalid("The JSON schema in outputConfig is not valid JSON.") from None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise _invalid("The JSON schema in outputConfig must describe an object.")
    return schema


def _effort(output: Any) -> str | None:
    if not isinstance(output, Mapping) or output.get("effort") is None:
        return None
    effort = output["effort"]
    if effort not in EFFORTS:
        raise _invalid(f"outputConfig.effort must be one of {', '.join(EFFORTS)}.")
    return str(effort)


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, Mapping) or not 1 <= len(metadata) <= 16:
        raise _invalid("requestMetadata must have between 1 and 16 entries.")
    for key, value in metadata.items():
        key_ok = isinstance(key, str) and 1 <= len(key) <= 256
        value_ok = isinstance(value, str) and len(value) <= 256
        if not (key_ok and value_ok and _METADATA_TEXT.fullmatch(key + value)):
            raise _invalid(
                f"requestMetadata entry {key!r} does not match [a-zA-Z0-9\\s:_@$#=/+,-.]."
            )


def _cache_points(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    blocks: list[Any] = []
    tool_config = body.get("toolConfig")
    if isinstance(tool_config, Mapping):
        blocks.extend(tool_config.get("tools") or [])
    blocks.extend(body.get("system") or [])
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            blocks.extend(message.get("content") or [])
    return [
        block["cachePoint"]
        for block in blocks
        if isinstance(block, Mapping) and isinstance(block.get("cachePoint"), Mapping)
    ]


def _first_cache_ttl(body: Mapping[str, Any]) -> str:
    points = _cache_points(body)
    for point in points:
        ttl = point.get("ttl", "5m")
        if ttl not in CACHE_TTLS:
            raise _invalid(f"cachePoint.ttl must be one of {', '.join(CACHE_TTLS)}.")
    # Bedrock reads tools, then system, then messages; the first point there is the longest.
    return str(points[0].get("ttl", "5m")) if points else "5m"


def schema_sample(schema: Any, depth: int = 0, defs: Mapping[str, Any] | None = None) -> Any:
    """A small, deterministic value that fits `schema` (the common JSON Schema keywords)."""
    if not isinstance(schema, Mapping) or depth > _MAX_SAMPLE_DEPTH:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return schema_sample(defs.get(name), depth + 1, defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return schema_sample(schema[combinator][0], depth + 1, defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: schema_sample(sub, depth + 1, defs) for name, sub in properties.items()}
    if kind == "array":
        count = int(schema.get("minItems") or 1)
        return [schema_sample(schema.get("items"), depth + 1, defs) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = "text"
    return text + "x" * max(0, int(schema.get("minLength") or 0) - len(text))
