"""Refuse request bodies too large for anything the portal accepts, before Django reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string


class RequestSizeLimitMiddleware:
    """413 for a declared body over MAX_REQUEST_BYTES: no upload handler spools it to disk."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BYTES:
            page = render_to_string(
                "413.html",
                {
                    "size": filesizeformat(length),
                    "limit": filesizeformat(settings.MAX_REQUEST_BYTES),
                },
            )
            return HttpResponse(page, status=413)
        return self.get_response(request)
