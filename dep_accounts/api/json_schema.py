"""JSON Schema (draft 2020-12, as OpenAPI 3.1 uses it) derived from the API's TypedDicts.

Each TypedDict becomes a component named after its class, closed to other keys, its docstring as
the description; `Annotated[..., Schema(...)]` adds keywords such as a format or a description.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, Required, Union, is_typeddict

SIMPLE_TYPES = {str: "string", int: "integer", bool: "boolean", float: "number"}


class Schema:
    """JSON Schema keywords for one annotated type: `Annotated[str, Schema(format="uri")]`."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords


RFC3339 = Annotated[str, Schema(format="date-time")]
URI = Annotated[str, Schema(format="uri")]


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def schema_of(annotation: Any, found: dict[str, dict], bound: dict | None = None) -> dict:
    """The schema of a type; each TypedDict it reaches is put in `found` and referred to.

    `bound` gives the arguments of the generic TypedDict the type is in.
    """
    if isinstance(annotation, typing.TypeVar):
        annotation = (bound or {})[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        base = schema_of(args[0], found, bound)
        for extra in args[1:]:
            if isinstance(extra, Schema):
                base = {**base, **extra.keywords}
        return base
    if origin in (Required, NotRequired):
        return schema_of(args[0], found, bound)
    if annotation is type(None):
        return {"type": "null"}
    if annotation in SIMPLE_TYPES:
        return {"type": SIMPLE_TYPES[annotation]}
    if annotation is datetime:
        raise TypeError("the API sends times as RFC3339 strings: annotate them RFC3339")
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return _union([schema_of(member, found, bound) for member in args])
    if origin is list:
        return {"type": "array", "items": schema_of(args[0], found, bound)}
    if annotation is dict or origin is dict:
        return {"type": "object"}
    if is_typeddict(origin or annotation):
        return _typed_dict(annotation, found)
    raise TypeError(f"no JSON Schema for {annotation!r}")


def _union(schemas: list[dict]) -> dict:
    if all(isinstance(schema.get("type"), str) for schema in schemas):
        # `str | None` as OpenAPI 3.1 writes it: one schema, a list of types.
        merged: dict = {}
        for schema in schemas:
            merged.update({k: v for k, v in schema.items() if k != "type"})
        return {"type": [schema["type"] for schema in schemas], **merged}
    return {"anyOf": schemas}


def _typed_dict(annotation: Any, found: dict[str, dict]) -> dict:
    """A $ref to the TypedDict's component; a generic one is named after its arguments."""
    origin, args = typing.get_origin(annotation) or annotation, typing.get_args(annotation)
    name = "".join(arg.__name__ for arg in args) + origin.__name__
    if name not in found:
        found[name] = {}  # placed first, so a component keeps the order it was first met in
        bound = dict(zip(getattr(origin, "__parameters__", ()), args, strict=True))
        hints = typing.get_type_hints(origin, include_extras=True)
        properties = {key: schema_of(hint, found, bound) for key, hint in hints.items()}
        schema = {"type": "object", "additionalProperties": False}
        if origin.__doc__:
            schema["description"] = origin.__doc__
        found[name] = {
            **schema,
            "required": [key for key, hint in hints.items() if _required(hint, origin)],
            "properties": properties,
        }
    return ref(name)


def _required(hint: Any, typed_dict: Any) -> bool:
    # Read from the hint, as __required_keys__ misses NotRequired in string annotations (3.11).
    wrapper = typing.get_origin(hint)
    if wrapper in (Required, NotRequired):
        return wrapper is Required
    return typed_dict.__total__
