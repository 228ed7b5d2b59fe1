"""Resolve the model and admit the request: the two stages between parsing and Bedrock.

Resolve: the caller's model name through the catalogue (aliases, allow-list, the model's
kind). Admit: the gateway's own capacity (`server.max_concurrent_requests`), then the
key's and its team's rpm, tpm and monthly budget (`gateway.limits`). Admission comes
after the body is read and checked, so a client still sending its body holds no slot that
other keys need, and a request Bedrock could never accept costs no rpm; and before any
remote image fetch or Bedrock call, so a refused request costs nobody anything.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gateway.errors import (
    InvalidRequestError,
    OverloadedError,
    PermissionDeniedError,
)

if TYPE_CHECKING:
    from gateway.bedrock.catalog import ResolvedModel
    from gateway.keys.index import Principal
    from gateway.pipeline.context import RequestContext
    from gateway.pipeline.runtime import Gateway, Runtime

__all__ = ["BEDROCK_MODEL_ID", "Admitted", "admit", "resolve_model"]

# What Bedrock accepts as a `modelId` (the service model's pattern, simplified to the
# characters it allows): a model id, an inference-profile id, or an ARN. Checked for
# unlisted pass-through ids, which come straight from the caller and reach a URL path,
# a response header and the ledger.
BEDROCK_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:/_-]{0,2047}")

# Which route serves each kind, for the error that says where to go instead.
_ROUTE_OF_KIND = {"embedding": "/v1/embeddings", "chat": "/v1/chat/completions"}


def resolve_model(runtime: Runtime, principal: Principal, name: str, *, kind: str) -> ResolvedModel:
    """The model a caller asked for, if its key may use it and it serves this route."""
    model = runtime.catalog.resolve(name)
    if model.config is None and not BEDROCK_MODEL_ID.fullmatch(name):
        raise InvalidRequestError(
            "The model id is not a Bedrock model id, inference profile id or ARN.",
            param="model",
            code="invalid_model_id",
        )
    if not principal.may_use(name, model.public_name):
        raise PermissionDeniedError(
            f"This API key is not allowed to use the model '{name}'.",
            param="model",
            code="model_not_allowed",
        )
    if model.kind != kind:
        raise InvalidRequestError(
            f"'{name}' is a {model.kind} model; call it through {_ROUTE_OF_KIND[model.kind]}.",
            param="model",
            code="wrong_model_kind",
        )
    return model


class Admitted:
    """Holds one of the gateway's concurrent-request slots until `release()`."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway | None) -> None:
        self._gateway = gateway

    def release(self) -> None:
        if self._gateway is not None:
            self._gateway.inflight_billable -= 1
            self._gateway = None


async def admit(gateway: Gateway, ctx: RequestContext) -> Admitted:
    """Take a concurrency slot and pass the key's and team's limits, or raise (503, 403,
    429). The slot is the caller's to release when the response is over."""
    assert ctx.principal is not None and ctx.model is not None
    runtime = ctx.runtime
    if gateway.inflight_billable >= gateway.max_concurrent:
        raise OverloadedError("The gateway is at its concurrent request limit; retry shortly.")
    limiter = gateway.limiter
    if (
        ctx.billable
        and not runtime.config.limits.allow_unpriced_models
        and limiter.has_budget(ctx.principal)
        and not runtime.prices.is_priced(
            model=ctx.model.public_name, bedrock_model_id=ctx.model.bedrock_id
        )
    ):
        raise PermissionDeniedError(
            f"The model '{ctx.model.public_name}' has no known price, and this key or its "
            "team has a monthly budget that its calls could not be charged to. An "
            "operator can set the model's pricing in the config.",
            param="model",
            code="model_not_priced",
        )
    gateway.inflight_billable += 1
    slot = Admitted(gateway)
    try:
        if ctx.billable:
            ctx.admission = await limiter.admit(ctx.principal)
    except BaseException:
        slot.release()
        raise
    return slot
