"""The portal's URLs plus what the bench compares its pages with: a minimal Django view, and
Django's own admin changelist of the DEP accounts with the DEP Accounts list's columns."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from dep_accounts.models import DEPAccount
from dep_accounts.selectors import dep_accounts_list
from dep_accounts.views.accounts import ACCOUNTS_PER_PAGE
from mdmportal.urls import urlpatterns as portal_urlpatterns

MINIMAL_PATH = "/bench/minimal/"
CHANGELIST_PATH = "/bench/admin/dep_accounts/depaccount/"


def minimal(request: HttpRequest) -> HttpResponse:
    """Through the same middleware as every page, then nothing: no database, no template."""
    return HttpResponse("ok", content_type="text/plain")


class DEPAccountChangelist(admin.ModelAdmin):
    """The DEP Accounts list's seven columns, one page of 50, in its order: what the stock
    admin does with the same rows."""

    list_display = (
        "server_name",
        "org_name",
        "admin_apple_id",
        "token_expires_at",
        "last_sync_at",
        "device_count",
        "state",
    )
    list_per_page = ACCOUNTS_PER_PAGE
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest):
        return dep_accounts_list()


bench_admin = admin.AdminSite(name="bench_admin")
bench_admin.register(DEPAccount, DEPAccountChangelist)

urlpatterns = [
    path("bench/minimal/", minimal),
    path("bench/admin/", bench_admin.urls),
    *portal_urlpatterns,
]
