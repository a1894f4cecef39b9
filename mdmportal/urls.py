from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dep_accounts.views.monitoring import metrics

urlpatterns = [
    path("django-admin/", admin.site.urls),
    # Sign-in and sign-out only: passwords are set by an admin, never reset by email.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("dep_accounts.api.urls")),
    path("metrics", metrics, name="metrics"),
    path("", include("dep_accounts.urls")),
]
