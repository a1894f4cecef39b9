from __future__ import annotations

from django.urls import path

from dep_accounts.api import push_views, views

app_name = "api"

urlpatterns = [
    path("dep-accounts/", views.dep_accounts, name="dep_accounts"),
    path("dep-accounts/<int:account_id>/", views.dep_account, name="dep_account"),
    path(
        "dep-accounts/<int:account_id>/public-key.pem",
        views.dep_account_public_key,
        name="dep_account_public_key",
    ),
    path("dep-accounts/<int:account_id>/token", views.dep_account_token, name="dep_account_token"),
    path("dep-accounts/<int:account_id>/sync", views.dep_account_sync, name="dep_account_sync"),
    path("push-certificate/", push_views.push_certificate, name="push_certificate"),
    path(
        "push-certificate/request",
        push_views.push_certificate_request,
        name="push_certificate_request",
    ),
    path(
        "push-certificate/certificate",
        push_views.push_certificate_upload,
        name="push_certificate_upload",
    ),
    path("audit-log/", views.audit_log, name="audit_log"),
    path("openapi.json", views.openapi, name="openapi"),
]
