"""Admin > Apple VPP > Content Tokens: the list, a token's page, Add and Edit (with renewal),
and a check with Apple on demand."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateformat import format as date_format
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from dep_accounts.forms import ContentTokenForm
from dep_accounts.models import ContentToken
from dep_accounts.services.content_tokens.intake import content_token_intake, content_token_update
from dep_accounts.services.content_tokens.state import (
    ContentTokenCheckUnavailableError,
    content_token_refresh,
)
from dep_accounts.services.content_tokens.verdict import AnotherMDMError, ContentTokenConfirmations
from dep_accounts.services.intake import TokenUpload
from dep_accounts.services.verdict import Refusal
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required, viewer_required
from dep_accounts.views.staging import StagedFile, files_stage, files_unstage, staged_names

TOKENS_PER_PAGE = 50
UPLOADS_SHOWN = 20
FORM_TEMPLATE = "dep_accounts/content_token_form.html"
NO_FILE_TO_CONFIRM = (
    "No content token file is waiting for this confirmation, so nothing was saved. Choose the "
    ".vpptoken file under Upload Token, keep the box ticked and save."
)


def _staging_key(content_token: ContentToken | None) -> str:
    return f"dep_accounts.staged_content_token.{content_token.pk if content_token else 'new'}"


@viewer_required
def content_token_list(request: SignedInRequest) -> HttpResponse:
    page = Paginator(ContentToken.objects.all(), TOKENS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dep_accounts/content_token_list.html", {"page": page})


@viewer_required
def content_token_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    content_token = get_object_or_404(ContentToken.objects.defer("credential_encrypted"), pk=pk)
    context = {
        "content_token": content_token,
        "uploads": content_token.uploads.select_related("uploaded_by")[:UPLOADS_SHOWN],
        "events": content_token.audit_events.all()[:10],
    }
    return render(request, "dep_accounts/content_token_detail.html", context)


@admin_required
def content_token_add(request: SignedInRequest) -> HttpResponse:
    return _content_token_form(request, None)


@admin_required
def content_token_edit(request: SignedInRequest, pk: int) -> HttpResponse:
    return _content_token_form(request, get_object_or_404(ContentToken, pk=pk))


def _content_token_form(
    request: SignedInRequest, content_token: ContentToken | None
) -> HttpResponse:
    """Add and Edit: the token first (when it is refused, the settings are not saved either)."""
    form = ContentTokenForm(
        request.POST or None, request.FILES or None, content_token=content_token
    )
    context = {"content_token": content_token, "form": form, "abm_url": settings.APPLESIM_ABM_URL}
    if request.method != "POST" or not form.is_valid():
        return render(request, FORM_TEMPLATE, context)
    key = _staging_key(content_token)
    staged = files_unstage(request.session, key)
    upload: TokenUpload | None = form.cleaned_data["token_file"]
    if upload is None and staged and form.cleaned_data["take_over"]:
        upload = staged[0].token_file()
    if upload is None and form.cleaned_data["take_over"]:
        form.add_error("take_over", NO_FILE_TO_CONFIRM)
        return render(request, FORM_TEMPLATE, context)
    renewed = None
    if upload is not None:
        try:
            renewed = _intake(request, form, content_token, upload)
        except Refusal as refusal:
            form.add_error("token_file", refusal.message)
            names = staged_names(request.session, key)
            context |= {"upload_error": refusal, "staged_name": names[0] if names else ""}
            return render(request, FORM_TEMPLATE, context)
    content_token = renewed or content_token
    assert content_token is not None, "Add takes a file, or the form is not valid"
    content_token_update(
        content_token=content_token,
        actor=request.user,
        apple_id=form.cleaned_data["apple_id"],
        notification_emails=form.cleaned_data["notification_emails"],
    )
    messages.success(request, _saved_message(content_token, renewed, adding=form.adding))
    return redirect(content_token)


def _intake(
    request: SignedInRequest,
    form: ContentTokenForm,
    content_token: ContentToken | None,
    upload: TokenUpload,
) -> ContentToken:
    confirmed = ContentTokenConfirmations(take_over=form.cleaned_data["take_over"])
    try:
        return content_token_intake(
            content_token=content_token,
            upload=upload,
            actor=request.user,
            apple_id=form.cleaned_data["apple_id"],
            confirmations=confirmed,
        )
    except AnotherMDMError:
        # Only the admin's confirmation is missing: keep the checked file for it.
        upload.seek(0)
        kept = StagedFile(upload.name, upload.read())
        files_stage(request.session, _staging_key(content_token), [kept])
        raise


def _saved_message(
    content_token: ContentToken, renewed: ContentToken | None, *, adding: bool
) -> str:
    if renewed is None:
        return f"Saved the settings of the content token of “{content_token.name}”."
    valid_until = date_format(localtime(content_token.expires_at), "j M Y")
    done = "added" if adding else "renewed"
    return (
        f"Content token of “{content_token.name}” {done}: valid until {valid_until} "
        f"({content_token.days_left()} days)."
    )


@admin_required
@require_POST
def content_token_check(request: SignedInRequest, pk: int) -> HttpResponse:
    content_token = get_object_or_404(ContentToken, pk=pk)
    try:
        content_token_refresh(content_token=content_token)
    except ContentTokenCheckUnavailableError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Checked with Apple: “{content_token.name}” is "
            f"{content_token.get_state_display().lower()}.",
        )
    return redirect(content_token)
