"""Signing in and out: the login page's identity providers, sign-out at the IdP, TOTP enrolment."""

from __future__ import annotations

import requests
from allauth.account.internal.flows.reauthentication import raise_if_reauthentication_required
from allauth.account.views import LoginView
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.forms import ActivateTOTPForm
from allauth.mfa.totp.internal import flows as totp_flows
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from dep_accounts.roles import can_manage, can_view
from dep_accounts.services.sso import totp_enrolment_record
from dep_accounts.sign_in import SSO_PROVIDER_SESSION_KEY


class PortalLoginView(LoginView):
    """allauth's sign-in, with each configured identity provider offered beside the form."""

    template_name = "registration/login.html"

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["identity_providers"] = [
            {
                "name": app["name"],
                "url": reverse("openid_connect_login", kwargs={"provider_id": app["provider_id"]}),
            }
            for app in settings.OIDC_PROVIDERS
        ]
        # LOCAL_LOGIN=false hides the form; ?break-glass shows it for a superuser's way in.
        context["local_login"] = settings.LOCAL_LOGIN or "break-glass" in self.request.GET
        return context


login = PortalLoginView.as_view()


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """End the portal session, then the IdP's when it has an end_session_endpoint."""
    provider_id = request.session.get(SSO_PROVIDER_SESSION_KEY)
    auth.logout(request)
    login_url = request.build_absolute_uri(reverse("login"))
    app = next((a for a in settings.OIDC_PROVIDERS if a["provider_id"] == provider_id), None)
    end_session = _end_session_endpoint(app["settings"]["server_url"]) if app else None
    if app is None or not end_session:
        return redirect("login")
    # OpenID Connect RP-Initiated Logout 1.0, section 2: client_id stands in for id_token_hint.
    query = urlencode({"client_id": app["client_id"], "post_logout_redirect_uri": login_url})
    return redirect(f"{end_session}?{query}")


def _end_session_endpoint(issuer: str) -> str | None:
    url = (
        issuer
        if "/.well-known/" in issuer
        else issuer.rstrip("/") + "/.well-known/openid-configuration"
    )
    try:
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        return response.json().get("end_session_endpoint")
    except (requests.RequestException, ValueError):
        # The portal session is over whatever the IdP says; its own session lapses on its own.
        return None


def two_factor(request: HttpRequest) -> HttpResponse:
    """Enrol a TOTP authenticator: a QR code to scan, then one code to prove it works."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not can_view(request.user):
        raise PermissionDenied("Your account has no role in this portal.")
    totp = Authenticator.objects.filter(user=request.user, type=Authenticator.Type.TOTP).first()
    if totp is not None:
        recovery = Authenticator.objects.filter(
            user=request.user, type=Authenticator.Type.RECOVERY_CODES
        ).first()
        left = len(RecoveryCodes(recovery).get_unused_codes()) if recovery else 0
        context = {"enrolled": totp, "recovery_codes_left": left}
        return render(request, "dep_accounts/two_factor.html", context)
    if not request.user.has_usable_password():
        return render(request, "dep_accounts/two_factor.html", {"sso_only": True})
    # Changing how one signs in asks for the password again (allauth's reauthentication),
    # before the secret is shown.
    raise_if_reauthentication_required(request, app="allauth.mfa")
    form = ActivateTOTPForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        _, recovery = totp_flows.activate_totp(request, form)
        # Rendered, not redirected: the codes must not travel through the session's messages.
        codes = RecoveryCodes(recovery).get_unused_codes() if recovery else []
        totp_enrolment_record(user=request.user, recovery_codes=len(codes))
        context = {"recovery_codes": codes, "enrolled": True, "recovery_codes_left": len(codes)}
        return render(request, "dep_accounts/two_factor.html", context)
    adapter = get_mfa_adapter()
    totp_url = adapter.build_totp_url(request.user, form.secret)
    context = {
        "form": form,
        "qr_svg": adapter.build_totp_svg(totp_url),
        "secret": form.secret,
        "required": settings.MFA_REQUIRED_FOR_ADMINS and can_manage(request.user),
    }
    return render(request, "dep_accounts/two_factor.html", context)
