"""What happens to each OpenAI request parameter on its way to Converse: tables.

Every field of `ChatCompletionRequest` appears in exactly one of these places (a test
checks it, so a new field cannot slip through undecided):

* `UNSUPPORTED_PARAMS`: Bedrock cannot honour them. A request that sets one to anything
  but its neutral value (`n: 1`, `frequency_penalty: 0`, ...) is a 400 naming it, or,
  with `drop_unsupported`, the parameter is left out and listed in `ConverseCall.dropped`.
  Neutral values pass because popular clients send them unasked (LangChain used to send
  `n: 1` and both penalties as 0 on every call).
* `IGNORED_PARAMS`: accepted and not forwarded. They concern OpenAI's side (storage,
  tiers, caches, abuse monitoring) or the handler (`stream`, `stream_options`), except
  `parallel_tool_calls`, mapped only where safe (see `gateway.translate.shared.tools`).
* `INFERENCE_PARAMS` and the named cases in `inference_config`: `inferenceConfig`.
* `TRANSLATED_PARAMS`: handled by their own code (messages, tools, metadata,
  `response_format` in `gateway.translate.shared.structured`, `reasoning_effort` in
  `gateway.translate.shared.reasoning`).

Unknown top-level fields (the SDK's `extra_body`) go through `EXTRA_BODY_PARAMS`, or are
read by other modules (`EXTRA_BODY_HANDLED`: `thinking`); any other one is treated like
an unsupported parameter. A field sent as JSON `null` counts as not sent.

`stop`: a string or any number of strings (OpenAI caps it at 4, Bedrock at 2500). Empty
strings ask for nothing and are skipped. Anthropic models refuse sequences made only of
whitespace ("\\n"); for them such a sequence is unsupported: a 400 naming `stop`, or,
with `drop_unsupported`, those sequences are removed and `stop` is listed as dropped.

`requestMetadata` (Bedrock's invocation-log tags) gets the gateway's own entries first
(`key_id`, `team`, `user` under `bedrock.request_metadata`), then the `user` field as
`user` (`end_user` when the gateway's entries are there) and then the `metadata` entries,
cleaned by `gateway.translate.shared.request_metadata`.

`service_tier`: "auto" and "default" ask for Bedrock's default tier (no `serviceTier`
sent), "flex" and "priority" become `serviceTier`; a tier the model's `service_tiers` does
not list is a 400 naming `service_tier` (with `drop_unsupported`: dropped, default tier).
`prompt_cache_retention`: "in_memory" or "24h" (1-hour cache points, see
`gateway.translate.shared.cache_points`); anything else is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from gateway.errors import InvalidRequestError, UnsupportedParameterError
from gateway.schemas.converse import InferenceConfiguration
from gateway.schemas.openai import ChatCompletionRequest
from gateway.translate.shared.cache_points import CACHE_RETENTIONS
from gateway.translate.shared.request_metadata import merged_metadata

__all__ = [
    "EXTRA_BODY_HANDLED",
    "EXTRA_BODY_PARAMS",
    "IGNORED_PARAMS",
    "INFERENCE_PARAMS",
    "SERVICE_TIERS",
    "TOP_K_FIELDS",
    "TRANSLATED_PARAMS",
    "UNSUPPORTED_PARAMS",
    "WHITESPACE_STOP_REFUSED",
    "Unsupported",
    "additional_model_request_fields",
    "cache_retention_ttl",
    "inference_config",
    "request_metadata",
    "service_tier",
    "unsupported_params",
]


def _never(value: Any) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Unsupported:
    reason: str  # completes "Bedrock cannot honour '<param>': ..."
    is_neutral: Callable[[Any], bool] = _never  # values that ask for nothing


UNSUPPORTED_PARAMS: Final[Mapping[str, Unsupported]] = {
    "n": Unsupported("it returns one choice per request", lambda v: v == 1),
    "logprobs": Unsupported("it returns no log probabilities", lambda v: v is False),
    "top_logprobs": Unsupported("it returns no log probabilities", lambda v: v == 0),
    "logit_bias": Unsupported("it has no token biasing", lambda v: not v),
    "seed": Unsupported("it has no seeded sampling"),
    "frequency_penalty": Unsupported("it has no frequency penalty", lambda v: v == 0),
    "presence_penalty": Unsupported("it has no presence penalty", lambda v: v == 0),
    "audio": Unsupported("it produces no audio output"),
    "modalities": Unsupported("it produces text only", lambda v: v == ["text"]),
    "prediction": Unsupported("it has no predicted outputs"),
    "web_search_options": Unsupported("it has no built-in web search"),
    "moderation": Unsupported("OpenAI's moderation models do not run on Bedrock"),
    "verbosity": Unsupported("it has no verbosity control", lambda v: v == "medium"),
    "functions": Unsupported("legacy 'functions' are not mapped; use 'tools'", lambda v: not v),
    "function_call": Unsupported(
        "legacy 'function_call' is not mapped; use 'tool_choice'",
        lambda v: v in ("none", "auto"),
    ),
}

_UNSUPPORTED_NAMES: Final = frozenset(UNSUPPORTED_PARAMS)

IGNORED_PARAMS: Final = frozenset(
    {
        "stream",  # the handler picks converse or converse_stream
        "stream_options",  # read by the handler (include_usage), never sent to Bedrock
        "parallel_tool_calls",  # handled in gateway.translate.shared.tools where safe
        "store",  # OpenAI-side storage for evals and distillation
        "prompt_cache_key",  # OpenAI cache routing; Bedrock caching uses cachePoint blocks
        "prompt_cache_options",
        "safety_identifier",  # OpenAI abuse monitoring
    }
)

# OpenAI parameter -> (inferenceConfig key, Bedrock's maximum). Converse caps temperature
# at 1 where OpenAI allows 2; a larger value is a 400 rather than a silent clamp.
INFERENCE_PARAMS: Final[Mapping[str, tuple[Literal["temperature", "topP"], float]]] = {
    "temperature": ("temperature", 1.0),
    "top_p": ("topP", 1.0),
}

TRANSLATED_PARAMS: Final = frozenset(
    {
        "model",  # resolved by the handler into the model_id argument
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "user",
        "metadata",
        "tools",
        "tool_choice",
        "response_format",  # gateway.translate.shared.structured
        "reasoning_effort",  # gateway.translate.shared.reasoning
        "service_tier",  # service_tier() below
        "prompt_cache_retention",  # cache_retention_ttl() below
    }
)


def unsupported_params(req: ChatCompletionRequest, *, drop: bool) -> list[str]:
    """The unsupported parameters the request sets, for `dropped`; raises unless `drop`."""
    found: list[str] = []
    if _UNSUPPORTED_NAMES.isdisjoint(req.model_fields_set):
        return found  # (every one defaults to None: only one the request sets can count)
    for name, rule in UNSUPPORTED_PARAMS.items():
        value = getattr(req, name)
        if value is None or rule.is_neutral(value):
            continue
        if not drop:
            raise UnsupportedParameterError(
                f"Bedrock cannot honour '{name}': {rule.reason}. Remove it, or ask the "
                "operator to enable drop_unsupported_params.",
                param=name,
            )
        found.append(name)
    return found


def inference_config(
    req: ChatCompletionRequest, *, model_id: str, drop: bool, dropped: list[str]
) -> InferenceConfiguration:
    config: InferenceConfiguration = {}
    # max_tokens is deprecated in favour of max_completion_tokens; the newer one wins.
    max_tokens = (
        req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    )
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    for name, (key, maximum) in INFERENCE_PARAMS.items():
        value = getattr(req, name)
        if value is None:
            continue
        if value > maximum:
            raise InvalidRequestError(
                f"Bedrock accepts '{name}' up to {maximum:g}; got {value:g}.", param=name
            )
        config[key] = value
    stop = _stop_sequences(req.stop, model_id=model_id, drop=drop, dropped=dropped)
    if stop:
        config["stopSequences"] = stop
    return config


# Model-id markers of the families that refuse stop sequences made only of whitespace:
# Anthropic answers "stop_sequences: each stop sequence must contain non-whitespace"
# (BerriAI/litellm#3286).
WHITESPACE_STOP_REFUSED: Final = ("anthropic.",)


def _stop_sequences(
    stop: str | list[str] | None, *, model_id: str, drop: bool, dropped: list[str]
) -> list[str]:
    if not stop:
        return []
    # An empty sequence asks for nothing (and Bedrock refuses it), so it is skipped.
    sequences = [s for s in ([stop] if isinstance(stop, str) else stop) if s]
    if any(marker in model_id for marker in WHITESPACE_STOP_REFUSED) and not all(
        s.strip() for s in sequences
    ):
        if not drop:
            raise UnsupportedParameterError(
                "This model refuses stop sequences made only of whitespace (such as "
                "'\\n'). Remove them, or ask the operator to enable drop_unsupported_params.",
                param="stop",
            )
        sequences = [s for s in sequences if s.strip()]
        dropped.append("stop")
    return sequences


# -- extra_body fields ---------------------------------------------------------------------


def _nova_top_k(k: int) -> dict[str, Any]:
    return {"inferenceConfig": {"topK": k}}


def _plain_top_k(k: int) -> dict[str, Any]:
    return {"top_k": k}


# Model-id marker -> where that family takes top_k in additionalModelRequestFields; the
# first marker found in the model id wins, else `top_k` at the top. Amazon Nova nests it
# ("Core inference", Amazon Nova user guide); Anthropic, Mistral and others take `top_k`.
TOP_K_FIELDS: Final[tuple[tuple[str, Callable[[int], dict[str, Any]]], ...]] = (
    ("amazon.nova", _nova_top_k),
)


def _top_k(value: Any, model_id: str) -> dict[str, Any]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError("top_k must be a non-negative integer.", param="top_k")
    for marker, fields in TOP_K_FIELDS:
        if marker in model_id:
            return fields(value)
    return _plain_top_k(value)


def _raw_fields(value: Any, model_id: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "additional_model_request_fields must be a JSON object; it is sent to Bedrock "
            "as additionalModelRequestFields.",
            param="additional_model_request_fields",
        )
    return value


# extra_body field -> its part of additionalModelRequestFields, merged in this order, so
# the raw `additional_model_request_fields` has the last word.
EXTRA_BODY_PARAMS: Final[Mapping[str, Callable[[Any, str], dict[str, Any]]]] = {
    "top_k": _top_k,
    "additional_model_request_fields": _raw_fields,
}


# extra_body fields that other modules read and turn into request fields of their own.
EXTRA_BODY_HANDLED: Final = frozenset({"thinking"})  # gateway.translate.shared.reasoning


def additional_model_request_fields(
    extra: Mapping[str, Any],
    *,
    model_id: str,
    drop: bool,
    dropped: list[str],
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`additionalModelRequestFields` from the request's unknown top-level fields.

    `base` holds the fields the translator sets itself (thinking); the extra fields are
    merged over it, so the raw `additional_model_request_fields` still has the last word.
    Fields outside `EXTRA_BODY_PARAMS` and `EXTRA_BODY_HANDLED` are refused by name, or
    appended to `dropped`.
    """
    for name, value in extra.items():
        if name in EXTRA_BODY_PARAMS or name in EXTRA_BODY_HANDLED or value is None:
            continue
        if not drop:
            raise UnsupportedParameterError(
                f"Unknown parameter '{name}'. Bedrock-specific fields go in "
                "'additional_model_request_fields'.",
                param=name,
            )
        dropped.append(name)
    fields: dict[str, Any] = dict(base or {})
    for name, convert in EXTRA_BODY_PARAMS.items():
        value = extra.get(name)
        if value is not None:
            fields = _merged(fields, convert(value, model_id))
    return fields


def _merged(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in update.items():
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            result[key] = _merged(current, value)
        else:
            result[key] = value
    return result


# -- requestMetadata, service tier, cache retention -----------------------------------------


def request_metadata(
    user: str | None,
    metadata: Mapping[str, str] | None,
    gateway: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`requestMetadata`: the gateway's entries, then `user`, then the client's `metadata`.

    With the gateway's entries, whose `user` is the key's user, the request's `user` field
    (the end user, as the usage record calls it) goes in as `end_user`.
    """
    if not (user or metadata or gateway):
        return {}
    client = [("end_user" if gateway else "user", user)] if user else []
    client.extend((metadata or {}).items())
    return merged_metadata(gateway, client)


# OpenAI `service_tier` -> Converse `serviceTier.type`; None: Bedrock's default (not sent).
SERVICE_TIERS: Final[Mapping[str, str | None]] = {
    "auto": None,
    "default": None,
    "flex": "flex",
    "priority": "priority",
}


def service_tier(
    requested: str | None, *, allowed: Sequence[str], drop: bool, dropped: list[str]
) -> str | None:
    """The Converse tier for `requested` if the model accepts it; None for the default."""
    if requested is None or requested == "auto":
        return None
    if requested not in SERVICE_TIERS:
        raise InvalidRequestError(
            f"service_tier must be one of {', '.join(SERVICE_TIERS)}; got {requested!r}.",
            param="service_tier",
        )
    if requested in allowed:
        return SERVICE_TIERS[requested]
    if not drop:
        raise UnsupportedParameterError(
            f"This model does not offer the {requested!r} service tier; it offers "
            f"{', '.join(['auto', *allowed])}.",
            param="service_tier",
        )
    dropped.append("service_tier")
    return None


def cache_retention_ttl(retention: str | None) -> str:
    """The default cache point lifetime for OpenAI `prompt_cache_retention`."""
    if retention is None:
        return "5m"
    ttl = CACHE_RETENTIONS.get(retention)
    if ttl is None:
        raise InvalidRequestError(
            f"prompt_cache_retention must be one of {', '.join(CACHE_RETENTIONS)}; "
            f"got {retention!r}.",
            param="prompt_cache_retention",
        )
    return ttl
