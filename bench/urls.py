"""The portal's URLs plus the minimal Django view the load scenario compares the list with."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from mdmportal.urls import urlpatterns as portal_urlpatterns


def minimal(request: HttpRequest) -> HttpResponse:
    """Through the same middleware as every page, then nothing: no database, no template."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("bench/minimal/", minimal), *portal_urlpatterns]
