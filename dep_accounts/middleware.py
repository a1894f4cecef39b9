"""Refuse request bodies too large for anything the portal accepts, before Django reads them."""

from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import reverse

from dep_accounts.roles import can_manage
from dep_accounts.sign_in import SSO_PROVIDER_SESSION_KEY


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


class TwoFactorEnrolmentMiddleware:
    """With MFA_REQUIRED_FOR_ADMINS, an admin signed in by password enrols TOTP before anything.

    SSO sign-ins are left to the identity provider's own second factor; API keys and the
    /metrics token do not use the session and are not affected.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.MFA_REQUIRED_FOR_ADMINS and self._must_enrol(request):
            return redirect("dep_accounts:two_factor")
        return self.get_response(request)

    def _must_enrol(self, request: HttpRequest) -> bool:
        user = request.user
        if not user.is_authenticated or not can_manage(user):
            return False
        if SSO_PROVIDER_SESSION_KEY in request.session:
            return False
        allowed = (
            reverse("dep_accounts:two_factor"),
            reverse("logout"),
            reverse("account_reauthenticate"),
            "/" + settings.STATIC_URL.lstrip("/"),
            "/api/",
            "/metrics",
        )
        if request.path.startswith(allowed):
            return False
        return not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
