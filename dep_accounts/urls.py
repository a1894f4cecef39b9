from __future__ import annotations

from django.urls import path

from dep_accounts import views
from dep_accounts.views import email, monitoring
from dep_accounts.views.me import me
from dep_accounts.views.push import push_certificate, push_edit, push_request
from dep_accounts.views.renewal import (
    account_start_renewal,
    account_terms_check,
    bulk_renew,
    bulk_renew_confirm,
)
from dep_accounts.views.sign_in import two_factor

app_name = "dep_accounts"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("admin/apple-dep/dep-accounts/", views.account_list, name="list"),
    path("admin/apple-dep/dep-accounts/add/", views.account_add, name="add"),
    path("admin/apple-dep/dep-accounts/add/<int:pk>/", views.account_add_token, name="add_token"),
    path(
        "admin/apple-dep/dep-accounts/add/<int:pk>/confirm/",
        views.account_add_confirm,
        name="add_confirm",
    ),
    path("admin/apple-dep/dep-accounts/<int:pk>/", views.account_detail, name="detail"),
    path("admin/apple-dep/dep-accounts/<int:pk>/edit/", views.account_edit, name="edit"),
    path(
        "admin/apple-dep/dep-accounts/<int:pk>/public-key.pem",
        views.account_public_key,
        name="public_key",
    ),
    path("admin/apple-dep/dep-accounts/<int:pk>/sync/", views.account_sync, name="sync"),
    path(
        "admin/apple-dep/dep-accounts/<int:pk>/full-resync/",
        views.account_full_resync,
        name="full_resync",
    ),
    path("admin/apple-dep/devices/", views.device_list, name="devices"),
    path("admin/apple-dep/profiles/", views.profile_list, name="profiles"),
    path("admin/apple-dep/profiles/add/", views.profile_add, name="profile_add"),
    path("admin/apple-dep/profiles/<int:pk>/assign/", views.profile_assign, name="profile_assign"),
    path(
        "admin/apple-dep/profiles/<int:pk>/make-default/",
        views.profile_make_default,
        name="profile_make_default",
    ),
    path("admin/subscription/", views.subscription, name="subscription"),
    path("admin/audit-log/", views.audit_log, name="audit_log"),
    path("me/", me, name="me"),
    path("me/test-email/", email.email_test, name="email_test"),
    path("admin/outbox/", email.outbox, name="outbox"),
    path("me/two-factor/", two_factor, name="two_factor"),
    path("me/calendar/", monitoring.calendar_settings, name="calendar"),
    path("calendar/<slug:secret>.ics", monitoring.calendar_feed, name="calendar_feed"),
    path("admin/webhooks/", monitoring.webhooks, name="webhooks"),
    path("admin/webhooks/change/", monitoring.webhook_change, name="webhook_change"),
]

urlpatterns += [
    path("admin/apple-dep/dep-accounts/bulk-renew/", bulk_renew, name="bulk_renew"),
    path(
        "admin/apple-dep/dep-accounts/bulk-renew/confirm/",
        bulk_renew_confirm,
        name="bulk_renew_confirm",
    ),
    path(
        "admin/apple-dep/dep-accounts/<int:pk>/start-renewal/",
        account_start_renewal,
        name="start_renewal",
    ),
    path(
        "admin/apple-dep/dep-accounts/<int:pk>/terms-check/",
        account_terms_check,
        name="terms_check",
    ),
]
urlpatterns += [
    path("admin/apns/", push_certificate, name="push"),
    path("admin/apns/edit/", push_edit, name="push_edit"),
    path("admin/apns/request/", push_request, name="push_request"),
]
