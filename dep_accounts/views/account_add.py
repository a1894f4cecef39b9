"""Add DEP Account: create the key pair, upload the server token, confirm the preview."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.timezone import localtime
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from dep_accounts.encryption import SecretDecryptionError, secret_decrypt, secret_encrypt
from dep_accounts.forms import TokenUploadForm
from dep_accounts.models import DEPAccount
from dep_accounts.services import tokens
from dep_accounts.services.token_upload import server_token_refusal_record
from dep_accounts.views.access import admin_required

UPLOAD_TEMPLATE = "dep_accounts/account_add_token.html"


@admin_required
def account_add(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        account = tokens.account_create(actor=request.user)
        return redirect("dep_accounts:add_token", pk=account.pk)
    awaiting = DEPAccount.objects.filter(state=DEPAccount.State.AWAITING_TOKEN).order_by("-id")
    return render(request, "dep_accounts/account_add.html", {"awaiting": awaiting[:10]})


@admin_required
@sensitive_variables("token_file")
def account_add_token(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    if account.token_expires_at is not None:
        return redirect(account)
    form = TokenUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        token_file = form.token_file_bytes()
        try:
            check = tokens.token_check(account=account, token_file=token_file)
        except tokens.TokenUploadError as exc:
            return _upload_refused(request, account, form, exc)
        preview = _preview(account, check)
        if preview["already_added"] is None:
            file_name = form.cleaned_data["token_file"].name
            _staged_token_put(request.session, account, token_file, file_name)
        else:
            _refusal_record(
                request,
                account,
                f"the MDM server “{preview['server_name']}” is already added as "
                f"“{preview['already_added'].name}”.",
                reason=tokens.WrongServerError.code,
            )
        context = {"account": account, "preview": preview}
        return render(request, "dep_accounts/account_add_confirm.html", context)
    # An empty or oversized file is refused by the form; a missing one is not an upload.
    if form.has_error("token_file") and not form.has_error("token_file", "required"):
        _refusal_record(request, account, " ".join(form.errors["token_file"]), reason="bad_file")
    return render(request, UPLOAD_TEMPLATE, _upload_context(account, form))


@admin_required
@require_POST
@sensitive_variables("token_file", "staged")
def account_add_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    staged = _staged_token_pop(request.session, account)
    if staged is None:
        messages.error(request, "The uploaded token is no longer at hand: upload it again.")
        return redirect("dep_accounts:add_token", pk=account.pk)
    token_file, file_name = staged
    try:
        check = tokens.token_check(account=account, token_file=token_file)
        account = tokens.account_token_add(
            account=account, check=check, actor=request.user, file_name=file_name
        )
    except tokens.TokenUploadError as exc:
        return _upload_refused(request, account, TokenUploadForm({}), exc)
    messages.success(
        request,
        f"Added “{account.server_name}” of {account.org_name}: the server token is valid until "
        f"{date_format(localtime(account.token_expires_at), 'j M Y')}.",
    )
    return redirect(account)


def _upload_refused(
    request: HttpRequest, account: DEPAccount, form: TokenUploadForm, exc: tokens.TokenUploadError
) -> HttpResponse:
    """Show why the token was refused, and keep a trace of it in the audit log."""
    _refusal_record(request, account, exc.message, reason=exc.code)
    # On the confirm step the form is empty: the error is the token's, not a missing file.
    form.errors.clear()
    form.add_error("token_file", exc.message)
    return render(request, UPLOAD_TEMPLATE, {**_upload_context(account, form), "upload_error": exc})


def _refusal_record(request: HttpRequest, account: DEPAccount, why: str, *, reason: str) -> None:
    upload = request.FILES.get("token_file")
    server_token_refusal_record(
        account=account,
        actor=request.user,
        message=why,
        reason=reason,
        file_name=upload.name if upload else "",
    )


def _preview(account: DEPAccount, check: tokens.TokenCheck) -> dict:
    """What the admin confirms; the decrypted token itself stays out of the template."""
    found = check.apple_account
    return {
        "already_added": DEPAccount.objects.filter(server_uuid=found.server_uuid)
        .exclude(pk=account.pk)
        .first(),
        "server_name": found.server_name,
        "org_name": found.org_name,
        "admin_apple_id": found.admin_id,
        "expires_at": check.token.access_token_expiry,
        "consumer_key_fingerprint": check.token.consumer_key_fingerprint,
    }


def _upload_context(account: DEPAccount, form: TokenUploadForm) -> dict:
    return {"account": account, "form": form, "abm_url": settings.APPLESIM_ABM_URL}


def _staged_token_key(account: DEPAccount) -> str:
    return f"dep_accounts.staged_token.{account.pk}"


@sensitive_variables("token_file")
def _staged_token_put(
    session: SessionBase, account: DEPAccount, token_file: bytes, file_name: str
) -> None:
    # Encrypted at rest like every other secret: the session store is a database table.
    session[_staged_token_key(account)] = {
        "token_file": secret_encrypt(token_file).decode("ascii"),
        "file_name": file_name[:255],
    }


@sensitive_variables()
def _staged_token_pop(session: SessionBase, account: DEPAccount) -> tuple[bytes, str] | None:
    staged = session.pop(_staged_token_key(account), None)
    if not staged:
        return None
    try:
        return secret_decrypt(staged["token_file"].encode("ascii")), staged["file_name"]
    except SecretDecryptionError:
        # Staged under an encryption key that has been rotated away since: upload it again.
        return None
