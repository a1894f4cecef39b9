"""Renewal without surprises: bulk renewal, guarded renewal and the terms check."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.sessions.backends.base import SessionBase
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.timezone import localtime
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from dep_accounts.encryption import SecretDecryptionError, secret_decrypt, secret_encrypt
from dep_accounts.models import DEPAccount
from dep_accounts.services import bulk, guarded
from dep_accounts.views.access import admin_required

BULK_TEMPLATE = "dep_accounts/bulk_renewal.html"
STAGED_KEY = "dep_accounts.bulk_renewal"


class TokenFilesInput(forms.FileInput):
    allow_multiple_selected = True

    def __init__(self) -> None:
        super().__init__(attrs={"accept": ".p7m", "class": "file-input"})


class TokenFilesField(forms.FileField):
    """Several files in one input; each one's problems are the preview's, not the form's."""

    widget = TokenFilesInput

    def clean(self, data, initial=None) -> list[UploadedFile]:
        files = data if isinstance(data, list | tuple) else [data]
        files = [upload for upload in files if upload]
        if not files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


class BulkRenewalForm(forms.Form):
    token_files = TokenFilesField(
        label="Server tokens (.p7m)",
        error_messages={"required": "Choose the .p7m files you downloaded from ABM."},
    )

    def token_files_read(self) -> list[bulk.TokenFile]:
        # One byte more than a token may have is enough to tell the file is too large.
        return [
            bulk.TokenFile(name=upload.name, content=upload.read(settings.DEP_TOKEN_MAX_BYTES + 1))
            for upload in self.cleaned_data["token_files"]
        ]


@admin_required
def bulk_renew(request: HttpRequest) -> HttpResponse:
    # Bound on every POST: a POST with no file at all must say so, not show the empty form.
    form = BulkRenewalForm(request.POST, request.FILES) if request.method == "POST" else None
    if form is not None and form.is_valid():
        rows = bulk.bulk_renewal_preview(token_files=form.token_files_read(), actor=request.user)
        _staged_put(request.session, rows)
        applying = [row for row in rows if row.applies]
        context = {"rows": rows, "applying": applying, "skipped": len(rows) - len(applying)}
        return render(request, "dep_accounts/bulk_renewal_confirm.html", context)
    return render(request, BULK_TEMPLATE, {"form": form or BulkRenewalForm()})


@admin_required
@require_POST
def bulk_renew_confirm(request: HttpRequest) -> HttpResponse:
    confirmed = set(request.POST.getlist("confirm_apple_id"))
    renewals = _staged_pop(request.session, confirmed)
    if not renewals:
        messages.error(request, "The uploaded tokens are no longer at hand: upload them again.")
        return redirect("dep_accounts:bulk_renew")
    results = bulk.bulk_renewal_apply(renewals=renewals, actor=request.user)
    renewed = [r for r in results if r.server_token is not None]
    if renewed:
        listed = "; ".join(
            f"{r.account.name} until "
            f"{date_format(localtime(r.server_token.access_token_expiry), 'j M Y')}"
            for r in renewed
        )
        renewed_text = ngettext(
            "Renewed %(count)d account: %(listed)s.",
            "Renewed %(count)d accounts: %(listed)s.",
            len(renewed),
        )
        messages.success(request, renewed_text % {"count": len(renewed), "listed": listed})
    for result in results:
        if result.server_token is None:
            name = f"“{result.account.name}”" if result.account else "its account"
            messages.error(request, f"“{result.file_name}” did not renew {name}: {result.problem}")
    return redirect("dep_accounts:list")


def _staged_put(session: SessionBase, rows: list[bulk.BulkRenewalRow]) -> None:
    # Encrypted at rest like every other secret, as the Add DEP Account flow does.
    session[STAGED_KEY] = [
        {
            "row": str(index),
            "account_id": row.account.pk,
            "file_name": row.file_name[:255],
            "token_file": secret_encrypt(row.token_file).decode("ascii"),
        }
        for index, row in enumerate(rows)
        if row.applies
    ]


def _staged_pop(session: SessionBase, confirmed: set[str]) -> list[bulk.StagedRenewal]:
    try:
        return [
            bulk.StagedRenewal(
                account_id=staged["account_id"],
                file_name=staged["file_name"],
                token_file=secret_decrypt(staged["token_file"].encode("ascii")),
                apple_id_change_confirmed=staged["row"] in confirmed,
            )
            for staged in session.pop(STAGED_KEY, None) or []
        ]
    except SecretDecryptionError:
        # Staged under an encryption key that has been rotated away since: upload them again.
        return []


@admin_required
@require_POST
def account_start_renewal(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    try:
        guarded.renewal_start(account=account, actor=request.user)
    except guarded.RenewalCheckError as exc:
        messages.error(request, exc.message)
        return redirect(account)
    messages.success(
        request,
        f"Renewal of “{account.name}” started. Now, in Apple Business Manager: Devices > "
        f"Management Services > “{account.server_name}” > Download Token, and confirm. Then upload "
        f"the file here under Edit > Upload Token. Until you do, the portal checks the old token "
        f"every {guarded.GUARD_CHECK_MINUTES} minutes and warns you the moment Apple resets it.",
    )
    return redirect(account)


@admin_required
@require_POST
def account_terms_check(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    try:
        accepted = guarded.terms_acceptance_check(account=account, actor=request.user)
    except guarded.RenewalCheckError as exc:
        messages.error(request, exc.message)
        return redirect(account)
    if accepted:
        messages.success(request, f"Apple agrees: the terms are accepted for “{account.name}”.")
    else:
        messages.error(
            request,
            "Apple still reports the terms as not accepted. Sign in to Apple Business Manager as "
            "an administrator, accept the new terms and conditions, then check again; Apple can "
            "take a few minutes to notice.",
        )
    return redirect(account)
