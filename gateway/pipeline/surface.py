"""`Surface`: what one API (chat completions, embeddings, ...) adds to the shared pipeline.

A surface supplies only what differs between APIs: its request model and how to read it
(`parse`), the pure checks and translation that must pass before anything is charged
(`prepare`), how to call Bedrock and answer once admitted (`respond`), and its error shape
(`error_body`, `error_status`). Everything else (who is calling, which model that is,
whether the caller may spend, retries and fallbacks, pricing, the ledger, metrics, the
access log) is the pipeline's, and runs for every surface in the same order
(`gateway.pipeline.handler`).

A surface cannot skip a stage because it never holds what a stage guards: `respond` gets
Bedrock only through the `Upstream` the pipeline builds after admission, and the ledger
record is written by the pipeline from the `RequestContext`, whatever `respond` did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.types import ASGIApp

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.bedrock.catalog import ResolvedModel
    from gateway.pipeline.context import RequestContext
    from gateway.pipeline.upstream import Upstream

__all__ = ["Parsed", "Surface"]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A surface's validated request, and the few facts the pipeline needs from it."""

    request: Any  # the surface's own request model
    model: str  # the model name as the caller sent it
    stream: bool = False
    end_user: str | None = None  # the caller's own end-user id (`user`, `metadata.user_id`)
    prompt: Any = None  # what the access log shows with `logging.log_prompts`


class Surface(Protocol):
    @property
    def route(self) -> str:
        """The path it serves (`POST` only), also the usage record's `route`."""
        ...

    @property
    def model_kind(self) -> str:
        """ "chat" or "embedding": the catalogue kind its models must have."""
        ...

    @property
    def billable(self) -> bool:
        """False for routes that call a model but bill nothing (token counting):
        still authenticated and allowed per model, counted in metrics, but not charged
        to limits and not written to the ledger."""
        ...

    def error_body(self, error: GatewayError) -> bytes:
        """`error` in the surface's own JSON error shape."""
        ...

    def error_status(self, error: GatewayError) -> int:
        """The HTTP status of `error` in the surface's API (`error.status`, unless the API
        has its own: Anthropic answers "overloaded" with 529)."""
        ...

    def parse(self, body: dict[str, Any], ctx: RequestContext) -> Parsed:
        """Validate the JSON body; a bad one raises `InvalidRequestError` naming the field."""
        ...

    def prepare(self, parsed: Parsed, model: ResolvedModel, ctx: RequestContext) -> Any:
        """Pure checks and translation for `model`, before any limit is charged, so that a
        request Bedrock could never accept is a 400 and costs the caller nothing."""
        ...

    async def respond(self, prepared: Any, upstream: Upstream, ctx: RequestContext) -> ASGIApp:
        """Call Bedrock through `upstream` and return the response to send (whole or a
        stream). Usage, first-token time and errors go into `ctx`."""
        ...
