"""`GET /v1/models` and `GET /v1/models/{id}` in OpenAI's list shape.

Every name a client may send is listed, aliases included, so that tools which pick a model
from this list (IDEs, chat UIs) offer the aliases the operator configured. A key with a
model allow-list sees only what it may use.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.bedrock.catalog import ResolvedModel
from gateway.errors import NotFoundError
from gateway.pipeline.runtime import Runtime
from gateway.server.bodies import json_response

__all__ = ["get_model", "list_models"]

# Config files have no creation time; a fixed epoch keeps the answer stable across restarts.
_CREATED = 1_700_000_000


def _model_object(name: str, model: ResolvedModel, runtime: Runtime) -> dict[str, Any]:
    """`owned_by` says where the entry comes from: `config` or `discovered` (the account's
    own listing, with its capability flags)."""
    entry: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": _CREATED,
        "owned_by": model.source,
        "bedrock_model_id": model.bedrock_id,
        "kind": model.kind,
    }
    capabilities = runtime.catalog.capabilities(model)
    if capabilities is not None:
        entry["capabilities"] = dict(capabilities)
    return entry


async def list_models(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    principal = request.state.principal
    data = []
    for name in runtime.catalog.public_names():
        model = runtime.catalog.get(name)
        if model is not None and principal.may_use(name, model.public_name):
            data.append(_model_object(name, model, runtime))
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    name: str = request.path_params["model"]
    model = runtime.catalog.get(name)
    if model is None or not request.state.principal.may_use(name, model.public_name):
        raise NotFoundError(
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return json_response(_model_object(name, model, runtime))
