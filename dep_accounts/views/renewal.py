"""Renewal without surprises: bulk renewal, guarded renewal and the terms check."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.timezone import localtime
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from dep_accounts.apple.file_kinds import FileKind
from dep_accounts.forms import BulkRenewalForm
from dep_accounts.models import DEPAccount
from dep_accounts.services.content_tokens.verdict import TAKE_OVER_LABEL
from dep_accounts.services.renewal import batch, watch
from dep_accounts.services.renewal.bulk_rows import StagedRenewal
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required
from dep_accounts.views.staging import StagedFile, files_stage, files_unstage

BULK_TEMPLATE = "dep_accounts/bulk_renewal.html"
STAGED_KEY = "dep_accounts.bulk_renewal"


@admin_required
def bulk_renew(request: SignedInRequest) -> HttpResponse:
    # Bound on every POST: a POST with no file at all must say so, not show the empty form.
    form = BulkRenewalForm(request.POST, request.FILES) if request.method == "POST" else None
    if form is not None and form.is_valid():
        rows = batch.bulk_renewal_preview(
            token_files=form.token_files_read(),
            actor=request.user,
            push_apple_id=form.cleaned_data["push_apple_id"].strip().lower(),
        )
        staged = [
            StagedFile(
                row.file_name,
                row.token_file,
                account_id=row.account.pk if row.account is not None else None,
                row=index,
                kind=row.kind,
                target_id=row.target_id,
                apple_id=row.apple_id,
            )
            for index, row in enumerate(rows)
            if row.applies and row.target_id is not None
        ]
        files_stage(request.session, STAGED_KEY, staged)
        applying = [row for row in rows if row.applies]
        context = {
            "rows": rows,
            "applying": applying,
            "skipped": len(rows) - len(applying),
            "only_accounts": all(row.kind == FileKind.SERVER_TOKEN for row in applying),
            "take_over_label": TAKE_OVER_LABEL,
        }
        return render(request, "dep_accounts/bulk_renewal_confirm.html", context)
    return render(request, BULK_TEMPLATE, {"form": form or BulkRenewalForm()})


@admin_required
@require_POST
def bulk_renew_confirm(request: SignedInRequest) -> HttpResponse:
    confirmed = set(request.POST.getlist("confirm_apple_id"))
    taken_over = set(request.POST.getlist("confirm_take_over"))
    renewals = [
        StagedRenewal(
            account_id=staged.account_id,
            file_name=staged.file_name,
            token_file=staged.content,
            apple_id_change_confirmed=str(staged.row) in confirmed,
            kind=staged.kind or FileKind.SERVER_TOKEN,
            target_id=staged.target_id,
            apple_id=staged.apple_id,
            take_over_confirmed=str(staged.row) in taken_over,
        )
        for staged in files_unstage(request.session, STAGED_KEY)
    ]
    if not renewals:
        messages.error(request, "The uploaded files are no longer at hand: upload them again.")
        return redirect("dep_accounts:bulk_renew")
    results = batch.bulk_renewal_apply(renewals=renewals, actor=request.user)
    renewed = [result for result in results if result.renewed]
    if renewed:
        listed = "; ".join(
            f"{result.target_name} until {date_format(localtime(result.expires_at), 'j M Y')}"
            for result in renewed
            if result.expires_at is not None
        )
        count = len(renewed)
        if all(result.kind == FileKind.SERVER_TOKEN for result in renewed):
            noun = ngettext("account", "accounts", count)
        else:
            noun = ngettext("credential", "credentials", count)
        messages.success(request, f"Renewed {count} {noun}: {listed}.")
    for result in results:
        if not result.renewed:
            name = f"“{result.target_name}”" if result.target_name else "what it was for"
            messages.error(request, f"“{result.file_name}” did not renew {name}: {result.problem}")
    return redirect("dep_accounts:list")


@admin_required
@require_POST
def account_start_renewal(request: SignedInRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    try:
        watch.renewal_start(account=account, actor=request.user)
    except watch.RenewalCheckError as exc:
        messages.error(request, exc.message)
        return redirect(account)
    messages.success(
        request,
        f"Renewal of “{account.name}” started. Now, in Apple Business Manager: Devices > "
        f"Management Services > “{account.server_name}” > Download Token, and confirm. Then upload "
        f"the file here under Edit > Upload Token. Until you do, the portal checks the old token "
        f"every {watch.GUARD_CHECK_MINUTES} minutes and warns you the moment Apple resets it.",
    )
    return redirect(account)


@admin_required
@require_POST
def account_terms_check(request: SignedInRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(DEPAccount, pk=pk)
    try:
        accepted = watch.terms_acceptance_check(account=account, actor=request.user)
    except watch.RenewalCheckError as exc:
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
