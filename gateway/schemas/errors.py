"""Pydantic validation errors as the `param` path and message of an OpenAI-shaped 400.

A module of its own because it is not a model: it walks the request models' annotations
to turn pydantic's locations into the JSON paths clients know. `gateway.schemas.openai`
re-exports `validation_error_param`, the name the handlers import.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

import pydantic
import typing_extensions
from pydantic import BaseModel

__all__ = ["validation_error_param"]


def validation_error_param(exc: pydantic.ValidationError) -> tuple[str | None, str]:
    """The OpenAI `param` path and a short message for the most telling error in `exc`.

    Pydantic's `loc` names union members as well as fields: a bad user message content is
    `("messages", 0, "user", "content", "str")`, where `"user"` is the role tag and
    `"str"` the member tried. Clients know only the JSON path, `messages[0].content`, so
    the location is walked along the model's own annotations and member labels are left
    out. When a union fails, every member reports an error; the deepest one that is not a
    plain type mismatch is the member the client meant (a list of parts with a bad part,
    not "Input should be a valid string"). `param` is None when the body itself is wrong
    (not JSON, or not an object).
    """
    # Imported here, not at the top: `gateway.schemas.openai` re-exports this function, so a
    # module-level import would make the two modules import each other.
    from gateway.schemas.openai import ChatCompletionRequest
    from gateway.schemas.openai_embeddings import EmbeddingRequest

    root: Any = (
        EmbeddingRequest if exc.title == EmbeddingRequest.__name__ else ChatCompletionRequest
    )
    best: tuple[int, int] = (-1, -1)
    param: str | None = None
    message = ""
    for error in exc.errors(include_url=False):
        path = _json_path(root, error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The failing key is the discriminator, which pydantic leaves out of `loc`.
            key = str(error.get("ctx", {}).get("discriminator", "")).strip("'\"")
            path = f"{path}.{key}" if path else key
        # A type mismatch only says "not this union member": any other error outranks it.
        mismatch = error["type"].endswith("_type") or error["type"] == "literal_error"
        rank = (len(path or ""), 0 if mismatch else 1)
        if rank > best:
            best, param, message = rank, path, error["msg"]
    if param is None:
        return None, message
    return param, f"Invalid value for '{param}': {message}"


def _json_path(root: Any, loc: tuple[int | str, ...]) -> str | None:
    path = ""
    current: Any = root
    for item in loc:
        current = _unwrap(current)
        members = _union_members(current)
        if members is not None and isinstance(item, str):
            current = _member_for_label(members, item)
            continue
        path += f"[{item}]" if isinstance(item, int) else f".{item}" if path else item
        current = _child_type(current, item)
    return path or None


def _unwrap(annotation: Any) -> Any:
    # Strip `Annotated[...]` and the `None` of an optional: pydantic puts neither in `loc`.
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    members = _union_members(annotation)
    if members is not None and len(members) == 1:
        return _unwrap(members[0])
    return annotation


def _union_members(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return None


def _member_for_label(members: list[Any], label: str) -> Any:
    # A discriminated union labels a member by its tag; a plain union by the member's type
    # name (`str`, `list[...]`, a model's class name, `tagged-union[...]` for a nested one).
    for member in map(_unwrap, members):
        nested = _union_members(member)
        if nested is not None:
            if label.startswith("tagged-union["):
                return member
            found = _member_for_label(nested, label)
            if found is not None:
                return found
        elif (fields := _fields(member)) is not None:
            if member.__name__ == label or any(
                typing.get_origin(field) is Literal and label in typing.get_args(field)
                for field in fields.values()
            ):
                return member
        elif (isinstance(member, type) and member.__name__ == label) or (
            typing.get_origin(member) is list and label.startswith("list[")
        ):
            return member
    return None


def _child_type(annotation: Any, item: int | str) -> Any:
    # The annotation one step down `loc`: a list item, a field, or a dict value.
    origin = typing.get_origin(annotation)
    if isinstance(item, int):
        return typing.get_args(annotation)[0] if origin is list else None
    fields = _fields(annotation)
    if fields is not None:
        return fields.get(item)
    return typing.get_args(annotation)[1] if origin is dict else None


def _fields(annotation: Any) -> dict[str, Any] | None:
    """Key -> annotation for a model (by name and by alias) or a TypedDict, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        keys = {name: field.annotation for name, field in fields.items()}
        keys.update({f.alias: f.annotation for f in fields.values() if f.alias is not None})
        return keys
    if typing_extensions.is_typeddict(annotation):
        # Without extras: `NotRequired[...]` stripped, as pydantic leaves it out of `loc`;
        # `Annotated` is unwrapped by the caller either way.
        return dict(typing_extensions.get_type_hints(annotation))
    return None
