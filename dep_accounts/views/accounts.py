"""DEP Accounts: the list, an account's page, Edit DEP Account (with token renewal), sync."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.http import content_disposition_header
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from dep_accounts.forms import AccountEditForm
from dep_accounts.models import DEPAccount, KeyPair, ServerToken
from dep_accounts.selectors import dep_accounts_list, token_custodians
from dep_accounts.services import tokens
from dep_accounts.services.sync import (
    SyncUnavailableError,
    account_full_resync_request,
    account_sync_request,
    sync_blocker,
)
from dep_accounts.services.token_upload import server_token_refusal_record
from dep_accounts.views.access import admin_required, viewer_required

ACCOUNTS_PER_PAGE = 50
DEVICES_SHOWN = 25
EMAILS_SHOWN = 10
EDIT_TEMPLATE = "dep_accounts/account_edit.html"


@viewer_required
def account_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(dep_accounts_list(), ACCOUNTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dep_accounts/account_list.html", {"page": page})


@viewer_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(
        DEPAccount.objects.select_related("default_profile", "renewal_started_by"), pk=pk
    )
    server_tokens = account.server_tokens.defer("secrets_encrypted").select_related("uploaded_by")
    context = {
        "account": account,
        "server_tokens": server_tokens,
        "custodians": token_custodians(server_tokens),
        "devices": account.devices.filter(removed_at__isnull=True)[:DEVICES_SHOWN],
        "migrating": account.devices.filter(
            removed_at__isnull=True, mdm_migration_deadline__isnull=False
        ).order_by("mdm_migration_deadline", "serial_number")[:DEVICES_SHOWN],
        "profiles": account.profiles.all(),
        "sync_unavailable": sync_blocker(account=account),
        "emails": account.emails.defer("body")[:EMAILS_SHOWN],
    }
    return render(request, "dep_accounts/account_detail.html", context)


@admin_required
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    form = AccountEditForm(request.POST or None, request.FILES or None, account=account)
    context = {"account": account, "form": form, "abm_url": settings.APPLESIM_ABM_URL}
    if request.method == "POST" and form.is_valid():
        try:
            # The token first: when it is refused, the settings are not saved either.
            server_token = _uploaded_token_renew(form, account=account, actor=request.user)
        except tokens.TokenUploadError as exc:
            form.add_error("token_file", exc.message)
            return render(request, EDIT_TEMPLATE, {**context, "upload_error": exc})
        tokens.account_update(account=account, actor=request.user, **form.account_settings())
        messages.success(request, _saved_message(account, server_token))
        return redirect(account)
    if form.has_error("token_file"):
        # The form refused the file itself (empty, or too large to be a server token).
        server_token_refusal_record(
            account=account,
            actor=request.user,
            message=" ".join(form.errors["token_file"]),
            reason="bad_file",
            file_name=request.FILES["token_file"].name,
        )
    return render(request, EDIT_TEMPLATE, context)


def _uploaded_token_renew(
    form: AccountEditForm, *, account: DEPAccount, actor: AbstractBaseUser
) -> ServerToken | None:
    upload = form.cleaned_data["token_file"]
    if upload is None:
        return None
    return tokens.token_renew(
        account=account,
        token_file=upload.read(),
        actor=actor,
        file_name=upload.name,
        apple_id_change_confirmed=form.cleaned_data["apple_id_changed"],
    )


def _saved_message(account: DEPAccount, server_token: ServerToken | None) -> str:
    if server_token is None:
        return f"Saved the settings of “{account.name}”."
    valid_until = date_format(localtime(server_token.access_token_expiry), "j M Y")
    return f"Server token renewed: valid until {valid_until} ({account.days_left()} days)."


@viewer_required
def account_public_key(request: HttpRequest, pk: int) -> HttpResponse:
    key_pair = get_object_or_404(KeyPair.objects.only("account_id", "certificate_pem"), account=pk)
    response = HttpResponse(key_pair.certificate_pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"mdmportal_{pk}_public_key.pem"
    )
    return response


@admin_required
@require_POST
def account_sync(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    try:
        account_sync_request(account=account, actor=request.user)
    except SyncUnavailableError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Sync of “{account.name}” requested: devices update shortly.")
    return redirect(account)


@admin_required
@require_POST
def account_full_resync(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    try:
        account_full_resync_request(account=account, actor=request.user)
    except SyncUnavailableError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Full re-sync of “{account.name}” requested: every device is fetched from Apple "
            "again, and devices Apple no longer lists are removed.",
        )
    return redirect(account)
