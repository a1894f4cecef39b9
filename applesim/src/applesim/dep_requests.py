"""What every DEP web service endpoint checks in a request body, and the refusal it answers with."""

from __future__ import annotations

from typing import Any

from applesim.web import Request

PAGE_LIMIT_DEFAULT = 100
PAGE_LIMIT_MAXIMUM = 1000


class DEPFailure(Exception):
    """Apple's refusal of a request: an HTTP status and Apple's plain-text error code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


def request_body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError as error:
        raise DEPFailure(400, "MALFORMED_REQUEST_BODY") from error
    if not isinstance(body, dict):
        raise DEPFailure(400, "MALFORMED_REQUEST_BODY")
    return body


def page_limit(body: dict[str, Any]) -> int:
    limit = body.get("limit", PAGE_LIMIT_DEFAULT)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise DEPFailure(400, "MALFORMED_REQUEST_BODY")
    return max(1, min(limit, PAGE_LIMIT_MAXIMUM))


def serials_requested(body: dict[str, Any]) -> list[str]:
    serials = body.get("devices")
    if not serials or not isinstance(serials, list):
        raise DEPFailure(400, "DEVICE_ID_REQUIRED")
    if len(serials) > 1000 or not all(isinstance(serial, str) for serial in serials):
        raise DEPFailure(400, "MALFORMED_REQUEST_BODY")
    return list(dict.fromkeys(serials))
