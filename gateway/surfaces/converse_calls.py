"""What the surfaces that call Converse share (OpenAI chat and the Responses API).

Both translate to a `ConverseCall` through the OpenAI-chat pair, so they need the same
things around it: the translator's per-model options from the config, the stand-in bytes
that let a request with remote images be checked before admission (the real images are
fetched only after it), Bedrock's cap on images, the stream's preamble test, the response
headers, and the input estimate for a record Bedrock's usage never reached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from gateway.bedrock.catalog import ResolvedModel
from gateway.errors import InvalidRequestError
from gateway.pipeline.context import RequestContext
from gateway.schemas.converse import ConverseRequest
from gateway.server.headers import name_list
from gateway.translate.openai_chat.request import ModelOptions
from gateway.translate.shared.estimate import estimate_input_tokens
from gateway.translate.shared.finish_reasons import served_tier
from gateway.translate.shared.guardrails import GUARDRAIL_INTERVENED

__all__ = [
    "MAX_IMAGES",
    "STAND_IN_IMAGE",
    "check_image_count",
    "estimate_converse_input",
    "is_message_start",
    "model_options",
    "response_headers",
    "settle_answer",
]

# Bedrock's Converse limit on images in one request ("up to 20 images").
MAX_IMAGES: Final = 20
# Stand-in bytes for remote images while a request is checked before admission: a 1x1 PNG.
STAND_IN_IMAGE: Final = (
    "png",
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
    ),
)
# At most this many dropped parameter names in `x-gateway-dropped-params` (then a count):
# a caller can send thousands of unknown fields, and a header that size breaks clients.
_DROPPED_NAMES_SHOWN: Final = 20


def model_options(max_image_bytes: int, model: ResolvedModel) -> ModelOptions:
    """The translator's options for `model`, from its config entry (none for unlisted ids)."""
    config = model.config
    if config is None:
        return ModelOptions(max_image_bytes=max_image_bytes)
    return ModelOptions(
        reasoning_supported=config.reasoning.supported,
        reasoning_budgets={str(k): v for k, v in config.reasoning.budgets.items()},
        auto_cache_system=config.auto_cache_system,
        max_image_bytes=max_image_bytes,
        reasoning_mode=config.reasoning.mode,
        structured_output=config.structured_output,
        service_tiers=tuple(config.service_tiers),
    )


def check_image_count(request: ConverseRequest, *, param: str) -> None:
    """A 400 naming `param` when the call carries more images than Bedrock takes."""
    images = sum(
        1
        for message in request.get("messages", ())
        for block in message["content"]
        if "image" in block
    )
    if images > MAX_IMAGES:
        raise InvalidRequestError(
            f"The request has {images} images; Bedrock takes at most {MAX_IMAGES}.",
            param=param,
            code="too_many_images",
        )


def is_message_start(event: dict[str, Any]) -> bool:
    """A ConverseStream is opened once its first event past `messageStart` has come."""
    return "messageStart" in event


def response_headers(model: ResolvedModel, dropped: tuple[str, ...]) -> dict[str, str]:
    """`x-gateway-model`, and the parameters left out under `drop_unsupported_params`
    (the first few names, then how many more: the list comes from the caller)."""
    headers = {"x-gateway-model": model.bedrock_id}
    if dropped:
        headers["x-gateway-dropped-params"] = name_list(dropped, shown=_DROPPED_NAMES_SHOWN)
    return headers


def estimate_converse_input(converse_request: Mapping[str, Any]) -> int:
    """Rough input size for the rare record Bedrock's usage never reached.

    Images and documents by their providers' sizing rules, not as a few characters
    (issue 19, item 7): see `gateway.translate.shared.estimate`.
    """
    return estimate_input_tokens(converse_request)


def settle_answer(
    ctx: RequestContext, answer: Mapping[str, Any], *, estimate_input: Callable[[], int]
) -> None:
    """What a whole Converse answer says about itself, into `ctx`: the tier it was served
    on, a guardrail intervention, and Bedrock's usage (or an estimate flagged as such)."""
    ctx.service_tier = served_tier(answer)
    if answer.get("stopReason") == GUARDRAIL_INTERVENED:
        ctx.guardrail_intervened = True
    usage = answer.get("usage")
    if usage:
        ctx.usage.take_converse(usage)
    else:  # Bedrock always sends usage; if it ever does not, say the numbers are ours
        ctx.estimated = True
        ctx.usage.input_tokens = estimate_input()
