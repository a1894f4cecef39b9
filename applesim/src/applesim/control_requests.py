"""What every /_sim/ control call checks in its JSON body, refused with SimError as-is."""

from __future__ import annotations

from typing import Any

from applesim.database import SimError
from applesim.web import Request


def json_body(request: Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object."""
    try:
        body = request.json()
    except ValueError as error:
        raise SimError(400, "JSON_INVALID", "The body must be a JSON object.") from error
    if not isinstance(body, dict):
        raise SimError(400, "JSON_INVALID", "The body must be a JSON object.")
    return body


def field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    """One field of the body, of this type (a bool is not an int), or `default` when absent."""
    value = body.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SimError(400, "FIELD_INVALID", f"{name} is missing or of the wrong type.")
    return value
