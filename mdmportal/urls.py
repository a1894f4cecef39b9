from __future__ import annotations

from allauth.account import views as account_views
from allauth.mfa.base import views as mfa_views
from allauth.socialaccount import views as social_views
from django.contrib import admin
from django.urls import include, path

from dep_accounts.views import sign_in
from dep_accounts.views.monitoring import metrics

# Sign-in and sign-out through django-allauth, only the parts the portal uses: passwords are set
# by an admin, never reset by email; nobody signs up; SSO users are made on first sign-in.
sign_in_patterns = [
    path("login/", sign_in.login, name="login"),
    path("login/", sign_in.login, name="account_login"),
    path("logout/", sign_in.logout, name="logout"),
    path("logout/", sign_in.logout, name="account_logout"),
    path("signup/", account_views.signup, name="account_signup"),
    path("inactive/", account_views.account_inactive, name="account_inactive"),
    path("reauthenticate/", account_views.reauthenticate, name="account_reauthenticate"),
    path("2fa/authenticate/", mfa_views.authenticate, name="mfa_authenticate"),
    path("2fa/reauthenticate/", mfa_views.reauthenticate, name="mfa_reauthenticate"),
    path("sso/cancelled/", social_views.login_cancelled, name="socialaccount_login_cancelled"),
    path("sso/error/", social_views.login_error, name="socialaccount_login_error"),
    path("sso/signup/", social_views.signup, name="socialaccount_signup"),
    path("", include("allauth.socialaccount.providers.openid_connect.urls")),
]

urlpatterns = [
    path("django-admin/", admin.site.urls),
    path("accounts/", include(sign_in_patterns)),
    path("api/v1/", include("dep_accounts.api.urls")),
    path("metrics", metrics, name="metrics"),
    path("", include("dep_accounts.urls")),
]
