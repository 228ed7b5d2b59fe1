"""Bedrock Guardrails on the wire: the operator's guardrail as Converse and InvokeModel want it.

Why a module of its own: three surfaces (chat, Responses, Messages) send the same
guardrail, two ways (Converse `guardrailConfig`, InvokeModel request parameters), and all
of them must refuse to let a caller touch it. The operator's `Guardrail` (chosen by
`gateway.pipeline.guardrails`: key > team > model > default) is the only one ever sent:

* Converse: `guardrailConfig {guardrailIdentifier, guardrailVersion, trace}`; ConverseStream
  adds `streamProcessingMode` (sync | async), which Converse does not have (botocore's model
  refuses it there).
* InvokeModel / InvokeModelWithResponseStream (Claude on `/v1/messages`): the request
  parameters `guardrailIdentifier`, `guardrailVersion` and `trace` (headers on the wire,
  `trace` in upper case); the asynchronous stream mode goes in the body as
  `amazon-bedrock-guardrailConfig: {streamProcessingMode: ASYNCHRONOUS}` (AWS user guide,
  "Configure streaming response behavior"); synchronous is Bedrock's default and sends
  nothing.
* A caller's own guardrail fields (`CALLER_GUARDRAIL_FIELDS`) are taken out of the request
  and listed in `x-gateway-dropped-params`, whatever `drop_unsupported_params` says: a
  caller can neither add a guardrail of its choosing nor remove or weaken the operator's.

An intervention comes back as Converse `stopReason: guardrail_intervened`, or, on
InvokeModel, as `amazon-bedrock-guardrailAction: INTERVENED` in Claude's message (whose
`stop_reason` stays `end_turn`) or in the stream's last chunk.

Pure: no I/O, config or clock.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from gateway.schemas.converse import GuardrailConfiguration

__all__ = [
    "CALLER_GUARDRAIL_FIELDS",
    "GUARDRAIL_ACTION",
    "GUARDRAIL_INTERVENED",
    "INVOKE_GUARDRAIL_CONFIG",
    "INVOKE_TRACE",
    "Guardrail",
    "converse_guardrail_config",
    "invoke_guardrail_body",
    "invoke_guardrail_params",
    "take_caller_guardrail_fields",
]

GUARDRAIL_INTERVENED: Final = "guardrail_intervened"  # Converse stopReason
GUARDRAIL_ACTION: Final = "amazon-bedrock-guardrailAction"  # InvokeModel: INTERVENED | NONE
INVOKE_GUARDRAIL_CONFIG: Final = "amazon-bedrock-guardrailConfig"  # InvokeModel body field

# Request fields a caller might use to choose, remove or weaken a guardrail -> what they
# are on Bedrock. Always dropped and listed; the operator's config decides alone.
CALLER_GUARDRAIL_FIELDS: Final[Mapping[str, str]] = {
    "guardrailConfig": "Converse guardrail configuration",
    "guardrailIdentifier": "InvokeModel guardrail parameter",
    "guardrailVersion": "InvokeModel guardrail parameter",
    "trace": "InvokeModel guardrail trace parameter",
    INVOKE_GUARDRAIL_CONFIG: "InvokeModel body guardrail configuration",
}

# Our `trace` setting -> Converse's and InvokeModel's spellings.
CONVERSE_TRACE: Final[Mapping[str, Literal["enabled", "disabled", "enabled_full"]]] = {
    "off": "disabled",
    "enabled": "enabled",
    "enabled_full": "enabled_full",
}
INVOKE_TRACE: Final[Mapping[str, str]] = {
    "off": "DISABLED",
    "enabled": "ENABLED",
    "enabled_full": "ENABLED_FULL",
}
# Our stream processing mode -> InvokeModelWithResponseStream's body spelling.
INVOKE_STREAM_MODES: Final[Mapping[str, str]] = {"sync": "SYNCHRONOUS", "async": "ASYNCHRONOUS"}


@dataclass(frozen=True, slots=True)
class Guardrail:
    """One configured guardrail: Bedrock's identifier (id or ARN) and version."""

    id: str
    version: str  # "1", "2", ... or "DRAFT"
    trace: str = "off"  # off | enabled | enabled_full
    stream_processing_mode: str = "sync"  # sync | async


def converse_guardrail_config(guardrail: Guardrail, *, stream: bool) -> GuardrailConfiguration:
    """Converse `guardrailConfig`; with `stream`, ConverseStream's (its processing mode too)."""
    config: GuardrailConfiguration = {
        "guardrailIdentifier": guardrail.id,
        "guardrailVersion": guardrail.version,
        "trace": CONVERSE_TRACE[guardrail.trace],
    }
    if stream:
        config["streamProcessingMode"] = (
            "async" if guardrail.stream_processing_mode == "async" else "sync"
        )
    return config


def invoke_guardrail_params(guardrail: Guardrail) -> dict[str, str]:
    """The InvokeModel request parameters (botocore's names) that apply `guardrail`."""
    return {
        "guardrailIdentifier": guardrail.id,
        "guardrailVersion": guardrail.version,
        "trace": INVOKE_TRACE[guardrail.trace],
    }


def invoke_guardrail_body(body: bytes, guardrail: Guardrail | None, *, stream: bool) -> bytes:
    """The InvokeModel JSON `body`, with the asynchronous stream mode when it applies.

    Appended to the compact JSON object the translator made (no second parse): only a
    stream under an `async` guardrail needs it, every other call sends `body` unchanged.
    """
    if guardrail is None or not stream or guardrail.stream_processing_mode != "async":
        return body
    field = orjson.dumps(
        {INVOKE_GUARDRAIL_CONFIG: {"streamProcessingMode": INVOKE_STREAM_MODES["async"]}}
    )
    if body == b"{}":
        return field
    return body[:-1] + b"," + field[1:]


def take_caller_guardrail_fields(fields: MutableMapping[str, Any]) -> list[str]:
    """Remove the caller's guardrail fields from `fields`; the names removed, in order."""
    found = [name for name in fields if name in CALLER_GUARDRAIL_FIELDS]
    for name in found:
        del fields[name]
    return found
