"""OpenAI's embeddings `input` as the list of texts Bedrock's embedding models take.

OpenAI accepts a string, an array of strings, an array of token ids or an array of such
arrays, no empty string, at most 2,048 items. Token ids are what LangChain's
`OpenAIEmbeddings` sends by default; they are decoded back to text by a decoder the caller
passes in (`gateway.tokenizers.token_decoder`), which keeps this module pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.errors import InvalidRequestError

__all__ = ["MAX_INPUTS", "embedding_inputs"]

MAX_INPUTS = 2048


def embedding_inputs(
    value: object, *, decode_tokens: Callable[[Sequence[int]], str] | None = None
) -> list[str]:
    """OpenAI's `input` as a list of texts, or the 400 OpenAI itself would give.

    Token-id input (an array of ids, or an array of such arrays) is what LangChain's
    `OpenAIEmbeddings` sends; `decode_tokens` turns one array back into its text
    (`gateway.tokenizers.token_decoder`, passed in so that this module stays pure).
    Without it, token ids are refused.
    """
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise InvalidRequestError("input must not be an empty array", param="input")
        if _is_token_ids(value):
            if decode_tokens is None:
                raise InvalidRequestError(
                    "input is given as token ids; send a string or an array of strings",
                    param="input",
                )
            arrays = value if isinstance(value[0], list) else [value]
            texts = [_decoded(ids, index, decode_tokens) for index, ids in enumerate(arrays)]
        elif not all(isinstance(item, str) for item in value):
            raise InvalidRequestError(
                "input must be a string or an array of strings", param="input"
            )
        else:
            texts = list(value)
    else:
        raise InvalidRequestError("input must be a string or an array of strings", param="input")

    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(
            f"input has {len(texts)} items; at most {MAX_INPUTS} are allowed per request",
            param="input",
        )
    for index, text in enumerate(texts):
        if not text:
            where = "input" if isinstance(value, str) else f"input[{index}]"
            raise InvalidRequestError(f"{where} must not be an empty string", param="input")
    return texts


def _decoded(ids: Sequence[int], index: int, decode: Callable[[Sequence[int]], str]) -> str:
    if not ids:
        raise InvalidRequestError(f"input[{index}] must not be an empty array", param="input")
    try:
        return decode(ids)
    except ValueError as exc:
        raise InvalidRequestError(f"input[{index}]: {exc}", param="input") from None


def _is_token_ids(items: list[Any]) -> bool:
    def is_id(item: object) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    return all(is_id(item) for item in items) or all(
        isinstance(item, list) and all(is_id(token) for token in item) for item in items
    )
