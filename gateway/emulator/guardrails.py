"""Bedrock Guardrails as the emulator plays them: checked on the way in, intervening on cue.

Bedrock validates a guardrail before the model runs, so the emulator does too, with a
400 ValidationException, which lets a test prove the gateway sends a well-formed one:

* Converse / ConverseStream `guardrailConfig`: `guardrailIdentifier` (`[a-z0-9]+` or a
  guardrail ARN) and `guardrailVersion` (a number or `DRAFT`) both present, `trace` one
  of enabled, disabled, enabled_full, `streamProcessingMode` (sync, async) on
  ConverseStream only, no other key.
* InvokeModel / InvokeModelWithResponseStream: the `X-Amzn-Bedrock-GuardrailIdentifier`
  and `-GuardrailVersion` headers together (same patterns), `X-Amzn-Bedrock-Trace` one of
  ENABLED, DISABLED, ENABLED_FULL, and a body `amazon-bedrock-guardrailConfig` (with
  `streamProcessingMode` SYNCHRONOUS or ASYNCHRONOUS, `tagSuffix`) only when an identifier
  is given, as Bedrock's API reference says.

Both are read into one `GuardrailSeen`, shown to scripts in Converse's shape (so `echo:
guardrailConfig` works on every route). The `guardrail: "intervene"` directive makes the
guardrail block the answer (SCRIPTING.md); without a guardrail in the request nothing
intervenes, as on Bedrock.

No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.emulator.errors import ServiceError

__all__ = [
    "BLOCKED_MESSAGE",
    "INVOKE_CONFIG",
    "GuardrailSeen",
    "read_converse_guardrail",
    "read_invoke_guardrail",
]

# What a guardrail answers by default when it blocks a model's output (Bedrock's console
# default for blocked messaging).
BLOCKED_MESSAGE: Final = "Sorry, the model cannot answer this question."
INVOKE_CONFIG: Final = "amazon-bedrock-guardrailConfig"
_IDENTIFIER: Final = re.compile(
    r"[a-z0-9]+|arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+"
)
_VERSION: Final = re.compile(r"[1-9][0-9]{0,7}|DRAFT")
_TRACES: Final = ("enabled", "disabled", "enabled_full")
_MODES: Final = ("sync", "async")
_INVOKE_MODES: Final = {"SYNCHRONOUS": "sync", "ASYNCHRONOUS": "async"}
_CONVERSE_KEYS: Final = ("guardrailIdentifier", "guardrailVersion", "trace")


@dataclass(frozen=True, slots=True)
class GuardrailSeen:
    """The guardrail a request carried, in Converse's terms."""

    identifier: str
    version: str
    trace: str = "disabled"
    stream_processing_mode: str | None = None

    @property
    def traced(self) -> bool:
        return self.trace != "disabled"

    def converse_view(self) -> dict[str, str]:
        view = {
            "guardrailIdentifier": self.identifier,
            "guardrailVersion": self.version,
            "trace": self.trace,
        }
        if self.stream_processing_mode is not None:
            view["streamProcessingMode"] = self.stream_processing_mode
        return view


def _invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def _check_id_and_version(identifier: Any, version: Any, where: str) -> tuple[str, str]:
    if not isinstance(identifier, str) or not _IDENTIFIER.fullmatch(identifier):
        raise _invalid(f"The guardrail identifier in {where} is not valid.")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise _invalid(f"The guardrail version in {where} is not valid.")
    return identifier, version


def read_converse_guardrail(value: Any, *, stream: bool) -> GuardrailSeen | None:
    """A Converse body's `guardrailConfig`, checked; None when there is none."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _invalid("guardrailConfig must be an object.")
    allowed = (*_CONVERSE_KEYS, "streamProcessingMode") if stream else _CONVERSE_KEYS
    extra = sorted(set(value) - set(allowed))
    if extra:
        raise _invalid(f"guardrailConfig: extraneous key [{extra[0]}] is not permitted")
    identifier, version = _check_id_and_version(
        value.get("guardrailIdentifier"), value.get("guardrailVersion"), "guardrailConfig"
    )
    trace = value.get("trace", "disabled")
    if trace not in _TRACES:
        raise _invalid(f"guardrailConfig.trace must be one of {', '.join(_TRACES)}.")
    mode = value.get("streamProcessingMode")
    if mode is not None and mode not in _MODES:
        raise _invalid(f"guardrailConfig.streamProcessingMode must be one of {', '.join(_MODES)}.")
    return GuardrailSeen(identifier, version, str(trace), mode)


def read_invoke_guardrail(
    headers: Iterable[tuple[bytes, bytes]], body: Mapping[str, Any]
) -> GuardrailSeen | None:
    """The guardrail of an InvokeModel call: its headers and the body's config, checked."""
    found: dict[bytes, str] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered.startswith(b"x-amzn-bedrock-guardrail") or lowered == b"x-amzn-bedrock-trace":
            found[lowered] = raw.decode("latin-1")
    identifier = found.get(b"x-amzn-bedrock-guardrailidentifier")
    version = found.get(b"x-amzn-bedrock-guardrailversion")
    config = body.get(INVOKE_CONFIG)
    if identifier is None and version is None:
        if config is not None:
            raise _invalid(
                f"{INVOKE_CONFIG} is specified in the request body, but no guardrail "
                "identifier is given."
            )
        return None
    identifier, version = _check_id_and_version(identifier, version, "the request headers")
    trace = found.get(b"x-amzn-bedrock-trace", "DISABLED")
    if trace.lower() not in _TRACES:
        raise _invalid("X-Amzn-Bedrock-Trace must be one of ENABLED, DISABLED, ENABLED_FULL.")
    mode: str | None = None
    if config is not None:
        if not isinstance(config, Mapping) or set(config) - {"streamProcessingMode", "tagSuffix"}:
            raise _invalid(f"Malformed input request: {INVOKE_CONFIG} is not valid.")
        if "streamProcessingMode" in config:
            mode = _INVOKE_MODES.get(config["streamProcessingMode"])
            if mode is None:
                raise _invalid(
                    f"{INVOKE_CONFIG}.streamProcessingMode must be SYNCHRONOUS or ASYNCHRONOUS."
                )
    return GuardrailSeen(identifier, version, trace.lower(), mode)
