"""DEP Accounts: the list, an account's page, Edit DEP Account (with token renewal), sync."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.dateformat import format as date_format
from django.utils.http import content_disposition_header
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from dep_accounts.forms import AccountEditForm
from dep_accounts.models import DEPAccount, KeyPair, ServerToken
from dep_accounts.selectors import dep_accounts_list, token_custodians
from dep_accounts.services.accounts import account_update
from dep_accounts.services.apple_access import sync_blocker
from dep_accounts.services.intake import TokenUpload, token_intake
from dep_accounts.services.sync import SyncUnavailableError
from dep_accounts.services.sync_requests import account_full_resync_request, account_sync_request
from dep_accounts.services.verdict import AppleIDChangedError, Confirmations, Refusal
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required, viewer_required
from dep_accounts.views.account_rows import account_rows
from dep_accounts.views.staging import (
    StagedFile,
    files_stage,
    files_unstage,
    staged_names,
    token_key,
)

ACCOUNTS_PER_PAGE = 50
DEVICES_SHOWN = 25
EMAILS_SHOWN = 10
EDIT_TEMPLATE = "dep_accounts/account_edit.html"


@viewer_required
def account_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(dep_accounts_list(), ACCOUNTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": account_rows(page.object_list),
        # The edit icon of every row, rendered once.
        "pencil": render_to_string("icons/pencil.svg"),
    }
    return render(request, "dep_accounts/account_list.html", context)


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
def account_edit(request: SignedInRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    form = AccountEditForm(request.POST or None, request.FILES or None, account=account)
    context = {"account": account, "form": form, "abm_url": settings.APPLESIM_ABM_URL}
    if request.method == "POST" and form.is_valid():
        upload = _token_upload(request, form, account)
        try:
            # The token first: when it is refused, the settings are not saved either.
            server_token = _token_take(request, form, account, upload)
        except Refusal as refusal:
            form.add_error("token_file", refusal.message)
            staged = staged_names(request.session, token_key(account.pk))
            context |= {"upload_error": refusal, "staged_name": staged[0] if staged else ""}
            return render(request, EDIT_TEMPLATE, context)
        if server_token is None and form.cleaned_data["apple_id_changed"]:
            form.add_error("apple_id_changed", NO_FILE_TO_CONFIRM)
            return render(request, EDIT_TEMPLATE, context)
        account_update(account=account, actor=request.user, **form.account_settings())
        messages.success(request, _saved_message(account, server_token))
        return redirect(account)
    return render(request, EDIT_TEMPLATE, context)


NO_FILE_TO_CONFIRM = (
    "No server token file is waiting for this confirmation, so nothing was saved. Choose the "
    ".p7m file under Upload Token, keep the box ticked and save."
)


def _token_upload(
    request: HttpRequest, form: AccountEditForm, account: DEPAccount
) -> TokenUpload | None:
    """The file chosen now or, when the admin ticks the Apple ID box, the one kept for it."""
    staged = files_unstage(request.session, token_key(account.pk))
    upload = form.cleaned_data["token_file"]
    if upload is None and staged and form.cleaned_data["apple_id_changed"]:
        return staged[0].token_file()
    return upload


def _token_take(
    request: SignedInRequest, form: AccountEditForm, account: DEPAccount, upload: TokenUpload | None
) -> ServerToken | None:
    if upload is None:
        return None
    confirmed = Confirmations(apple_id_changed=form.cleaned_data["apple_id_changed"])
    try:
        return token_intake(
            account=account, upload=upload, actor=request.user, confirmations=confirmed
        )
    except AppleIDChangedError:
        # Only the admin's confirmation is missing: keep the checked file for it.
        upload.seek(0)
        kept = StagedFile(upload.name, upload.read(), account_id=account.pk)
        files_stage(request.session, token_key(account.pk), [kept])
        raise


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
def account_sync(request: SignedInRequest, pk: int) -> HttpResponse:
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
def account_full_resync(request: SignedInRequest, pk: int) -> HttpResponse:
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
