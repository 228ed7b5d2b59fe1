"""The pydantic model of the OpenAI embeddings request (`POST /v1/embeddings`).

Apart from `gateway.schemas.openai`, the chat request's models: the two requests share
nothing but the conventions written there (unknown top-level fields kept, so the handler
can reject or forward them by name).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EmbeddingRequest"]


class EmbeddingRequest(BaseModel):
    """The body of `POST /v1/embeddings`.

    Unknown fields are kept, as for chat, so the handler can reject or forward them by name.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=2048)]
    )
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
