"""Add DEP Account: create the key pair, upload the server token, confirm the preview."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.timezone import localtime
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from dep_accounts.forms import TokenUploadForm
from dep_accounts.models import DEPAccount
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import token_intake, token_preview
from dep_accounts.services.verdict import Intent, Refusal, TokenCheck
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required
from dep_accounts.views.staging import StagedFile, files_stage, files_unstage, token_key

UPLOAD_TEMPLATE = "dep_accounts/account_add_token.html"


@admin_required
def account_add(request: SignedInRequest) -> HttpResponse:
    if request.method == "POST":
        account = account_create(actor=request.user)
        return redirect("dep_accounts:add_token", pk=account.pk)
    awaiting = DEPAccount.objects.filter(state=DEPAccount.State.AWAITING_TOKEN).order_by("-id")
    return render(request, "dep_accounts/account_add.html", {"awaiting": awaiting[:10]})


@admin_required
@sensitive_variables("token_file")
def account_add_token(request: SignedInRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    if account.token_expires_at is not None:
        return redirect(account)
    form = TokenUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["token_file"]
        try:
            preview = token_preview(
                account=account, upload=upload, actor=request.user, intent=Intent.ADD
            )
        except Refusal as refusal:
            return _upload_refused(request, account, form, refusal)
        staged = StagedFile(upload.name, preview.token_file.content, account_id=account.pk)
        files_stage(request.session, token_key(account.pk), [staged])
        context = {"account": account, "preview": _preview(preview.check)}
        return render(request, "dep_accounts/account_add_confirm.html", context)
    return render(request, UPLOAD_TEMPLATE, _upload_context(account, form))


@admin_required
@require_POST
@sensitive_variables("token_file", "staged")
def account_add_confirm(request: SignedInRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    staged = files_unstage(request.session, token_key(account.pk))
    if not staged:
        messages.error(request, "The uploaded token is no longer at hand: upload it again.")
        return redirect("dep_accounts:add_token", pk=account.pk)
    (token_file,) = staged
    try:
        token_intake(
            account=account, upload=token_file.token_file(), actor=request.user, intent=Intent.ADD
        )
    except Refusal as refusal:
        return _upload_refused(request, account, TokenUploadForm({}), refusal)
    messages.success(
        request,
        f"Added “{account.server_name}” of {account.org_name}: the server token is valid until "
        f"{date_format(localtime(account.token_expires_at), 'j M Y')}.",
    )
    return redirect(account)


def _upload_refused(
    request: HttpRequest, account: DEPAccount, form: TokenUploadForm, refusal: Refusal
) -> HttpResponse:
    """Show why the token was refused (the pipeline has already recorded it)."""
    # On the confirm step the form is empty: the error is the token's, not a missing file.
    form.errors.clear()
    form.add_error("token_file", refusal.message)
    context = {**_upload_context(account, form), "upload_error": refusal}
    return render(request, UPLOAD_TEMPLATE, context)


def _preview(check: TokenCheck) -> dict:
    """What the admin confirms; the decrypted token itself stays out of the template."""
    found = check.apple_account
    assert found is not None, "token_preview asks Apple"
    return {
        "server_name": found.server_name,
        "org_name": found.org_name,
        "admin_apple_id": found.admin_id,
        "expires_at": check.token.access_token_expiry,
        "consumer_key_fingerprint": check.token.consumer_key_fingerprint,
    }


def _upload_context(account: DEPAccount, form: TokenUploadForm) -> dict:
    return {"account": account, "form": form, "abm_url": settings.APPLESIM_ABM_URL}
