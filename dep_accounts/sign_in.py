"""django-allauth's hooks: who may sign in how, roles from the IdP, and TOTP secrets encrypted.

The rules live in services/sso.py; this module only plugs them into allauth's sign-in flow.
"""

from __future__ import annotations

import segno
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import user_logged_in
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dep_accounts.encryption import secret_decrypt, secret_encrypt
from dep_accounts.services import sso
from dep_accounts.users import User

SSO_PROVIDER_SESSION_KEY = "sso_provider_id"
# The role is worked out before allauth's login stages (a TOTP code may come in between) and
# applied when the sign-in completes, so it waits in the session.
SSO_ROLE_SESSION_KEY = "sso_pending_role"


def sso_claims(sociallogin: SocialLogin) -> dict:
    """The ID token's claims, with the userinfo endpoint's on top (Okta sends groups there)."""
    extra = sociallogin.account.extra_data
    return {**extra.get("id_token", {}), **extra.get("userinfo", {})}


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Local users are made by an admin; nobody signs themselves up.
        return False

    def pre_login(self, request: HttpRequest, user: User, **kwargs) -> HttpResponse | None:
        signal_kwargs = kwargs.get("signal_kwargs") or {}
        password = "sociallogin" not in signal_kwargs
        if password and not settings.LOCAL_LOGIN and not user.is_superuser:
            sso.password_sign_in_refuse(user=user)
            return render(request, "registration/local_login_off.html", status=403)
        return super().pre_login(request, user, **kwargs)

    def add_message(self, request, level, message_template=None, *args, **kwargs) -> None:
        # allauth's "Successfully signed in as …" adds nothing to landing on the dashboard.
        if message_template == "account/messages/logged_in.txt":
            return
        super().add_message(request, level, message_template, *args, **kwargs)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # Whoever the IdP vouches for with a role gets a user on their first sign-in.
        return True

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        mapping = sso.sso_role_mapping(provider_id=sociallogin.account.provider)
        claims = sso_claims(sociallogin)
        role = sso.sso_role_for_claims(mapping=mapping, claims=claims)
        if role is None:
            username = str(claims.get("preferred_username") or claims.get("email") or "")
            existing = sociallogin.user if sociallogin.is_existing else None
            sso.sso_sign_in_refuse(mapping=mapping, username=username, claims=claims, user=existing)
            page = render(
                request,
                "registration/sso_refused.html",
                {"provider_name": mapping.provider_name, "username": username},
                status=403,
            )
            raise ImmediateHttpResponse(page)
        request.session[SSO_ROLE_SESSION_KEY] = role


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return secret_encrypt(text.encode()).decode()

    def decrypt(self, encrypted_text: str) -> str:
        return secret_decrypt(encrypted_text.encode()).decode()

    def build_totp_svg(self, url: str) -> str:
        return segno.make(url, error="m").svg_inline(scale=5, border=2, title="TOTP QR code")


@receiver(user_logged_in)
def sign_in_record(sender, request: HttpRequest, user: User, **kwargs) -> None:
    """Apply the IdP's role on every SSO sign-in; audit every sign-in."""
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is not None:
        mapping = sso.sso_role_mapping(provider_id=sociallogin.account.provider)
        role = request.session.pop(SSO_ROLE_SESSION_KEY)
        sso.sso_sign_in_apply(user=user, mapping=mapping, role=role)
        request.session[SSO_PROVIDER_SESSION_KEY] = mapping.provider_id
        return
    two_factor = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    sso.password_sign_in_record(user=user, two_factor=two_factor)
