"""Renewal without surprises: bulk renewal, guarded renewal and the terms check."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.timezone import localtime
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from dep_accounts.forms import BulkRenewalForm
from dep_accounts.models import DEPAccount
from dep_accounts.services.renewal import batch, watch
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
        rows = batch.bulk_renewal_preview(token_files=form.token_files_read(), actor=request.user)
        staged = [
            StagedFile(row.file_name, row.token_file, account_id=row.account.pk, row=index)
            for index, row in enumerate(rows)
            if row.applies and row.account is not None
        ]
        files_stage(request.session, STAGED_KEY, staged)
        applying = [row for row in rows if row.applies]
        context = {"rows": rows, "applying": applying, "skipped": len(rows) - len(applying)}
        return render(request, "dep_accounts/bulk_renewal_confirm.html", context)
    return render(request, BULK_TEMPLATE, {"form": form or BulkRenewalForm()})


@admin_required
@require_POST
def bulk_renew_confirm(request: SignedInRequest) -> HttpResponse:
    confirmed = set(request.POST.getlist("confirm_apple_id"))
    renewals = [
        batch.StagedRenewal(
            account_id=staged.account_id,
            file_name=staged.file_name,
            token_file=staged.content,
            apple_id_change_confirmed=str(staged.row) in confirmed,
        )
        for staged in files_unstage(request.session, STAGED_KEY)
        if staged.account_id is not None
    ]
    if not renewals:
        messages.error(request, "The uploaded tokens are no longer at hand: upload them again.")
        return redirect("dep_accounts:bulk_renew")
    results = batch.bulk_renewal_apply(renewals=renewals, actor=request.user)
    renewed = [
        (r.account, r.server_token)
        for r in results
        if r.account is not None and r.server_token is not None
    ]
    if renewed:
        listed = "; ".join(
            f"{account.name} until "
            f"{date_format(localtime(server_token.access_token_expiry), 'j M Y')}"
            for account, server_token in renewed
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
