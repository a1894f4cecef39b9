"""Admin > APNs Certificate: the push certificate, its signed request, and Edit to renew it."""

from __future__ import annotations

from urllib.parse import urljoin

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateformat import format as date_format
from django.utils.http import content_disposition_header
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from dep_accounts.forms import PushCertificateForm
from dep_accounts.models import PushCertificateUpload
from dep_accounts.selectors import token_custodians
from dep_accounts.services.intake import TokenUpload
from dep_accounts.services.push.intake import (
    VendorCertificateMissingError,
    push_certificate_current,
    push_certificate_intake,
    push_request_make,
)
from dep_accounts.services.push.verdict import REPLACE_WORD, PushConfirmations, TopicChangedError
from dep_accounts.services.verdict import AppleIDChangedError, Refusal
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required, viewer_required
from dep_accounts.views.staging import StagedFile, files_stage, files_unstage, staged_names

EDIT_TEMPLATE = "dep_accounts/push_edit.html"
STAGED_KEY = "dep_accounts.staged_push_certificate"
REQUEST_FILE_NAME = "PushCertificateRequest.plist"


@viewer_required
def push_certificate(request: HttpRequest) -> HttpResponse:
    push = push_certificate_current()
    uploads = push.uploads.select_related("uploaded_by") if push else []
    context = {
        "push": push,
        "uploads": uploads,
        "custodians": token_custodians(uploads),
        "pushcert_url": _pushcert_url(),
    }
    return render(request, "dep_accounts/push.html", context)


@admin_required
@require_POST
def push_request(request: SignedInRequest) -> HttpResponse:
    try:
        signed_request = push_request_make(actor=request.user)
    except VendorCertificateMissingError as exc:
        messages.error(request, exc.message)
        return redirect("dep_accounts:push")
    response = HttpResponse(signed_request, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=REQUEST_FILE_NAME
    )
    return response


@admin_required
def push_edit(request: SignedInRequest) -> HttpResponse:
    push = push_certificate_current()
    form = PushCertificateForm(request.POST or None, request.FILES or None)
    context: dict[str, object] = {"push": push, "form": form, "replace_word": REPLACE_WORD}
    if request.method == "POST" and form.is_valid():
        upload = _upload(request, form)
        if upload is None:
            form.add_error("certificate_file", "Choose the .pem file the Apple portal gave.")
            return render(request, EDIT_TEMPLATE, context)
        try:
            stored = _intake(request, form, upload)
        except Refusal as refusal:
            form.add_error("certificate_file", refusal.message)
            staged = staged_names(request.session, STAGED_KEY)
            context |= {"upload_error": refusal, "staged_name": staged[0] if staged else ""}
            return render(request, EDIT_TEMPLATE, context)
        messages.success(request, _saved_message(stored))
        return redirect("dep_accounts:push")
    return render(request, EDIT_TEMPLATE, context)


def _pushcert_url() -> str:
    """applesim's Push Certificates Portal, in the demo only (beside its ABM page)."""
    abm_url = settings.APPLESIM_ABM_URL
    return urljoin(abm_url, "/pushcert/") if abm_url else ""


def _upload(request: HttpRequest, form: PushCertificateForm) -> TokenUpload | None:
    """The file chosen now or, when the admin confirms something, the one kept for it."""
    staged = files_unstage(request.session, STAGED_KEY)
    upload = form.cleaned_data["certificate_file"]
    confirming = form.cleaned_data["apple_id_changed"] or form.cleaned_data["topic_confirmation"]
    if upload is None and staged and confirming:
        return staged[0].token_file()
    return upload


def _intake(
    request: SignedInRequest, form: PushCertificateForm, upload: TokenUpload
) -> PushCertificateUpload:
    confirmed = PushConfirmations(
        apple_id_changed=form.cleaned_data["apple_id_changed"],
        topic_replacement=form.cleaned_data["topic_confirmation"],
    )
    try:
        return push_certificate_intake(
            upload=upload,
            actor=request.user,
            apple_id=form.cleaned_data["apple_id"],
            confirmations=confirmed,
        )
    except (TopicChangedError, AppleIDChangedError):
        # Only the admin's confirmation is missing: keep the checked file for it.
        upload.seek(0)
        files_stage(request.session, STAGED_KEY, [StagedFile(upload.name, upload.read())])
        raise


def _saved_message(stored: PushCertificateUpload) -> str:
    valid_until = date_format(localtime(stored.expires_at), "j M Y")
    if stored.topic_replaced:
        return (
            f"Push topic replaced with {stored.topic}: valid until {valid_until}. Devices "
            "enrolled with the old topic must enroll again."
        )
    return f"Push certificate saved: topic {stored.topic}, valid until {valid_until}."
