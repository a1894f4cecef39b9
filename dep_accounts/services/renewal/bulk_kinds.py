"""Bulk renewal of the other yearly credentials: content tokens and the push certificate.

Each kind keeps its own intake and verdict, with their wordings. A .vpptoken renews the content
token of the location Apple says it serves (matched as `manage.py content_token bulk-renew`
does); a .pem renews the portal's push certificate. The preview asks Apple, weighs and stores
nothing; confirming takes each file through its kind's intake again.

A push certificate with another topic is refused here without the typed confirmation the APNs
Certificate page offers: replacing the topic makes every enrolled device enroll again, which is
a decision for that page, one certificate at a time, not a row among many.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple.file_kinds import FileKind
from dep_accounts.models import ContentToken
from dep_accounts.services.content_tokens.bulk import content_token_for_location
from dep_accounts.services.content_tokens.intake import (
    content_token_check,
    content_token_intake,
    content_token_read,
    content_token_refusal_record,
    current_for,
)
from dep_accounts.services.content_tokens.verdict import (
    AnotherMDMError,
    ContentTokenConfirmations,
    content_token_verdict,
)
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.push.intake import (
    push_certificate_check,
    push_certificate_intake,
    push_certificate_read,
    push_certificate_requested,
    push_current_for,
    push_refusal_record,
)
from dep_accounts.services.push.verdict import (
    APPLE_ID_CHANGED_LABEL,
    PushConfirmations,
    TopicChangedError,
    push_verdict,
)
from dep_accounts.services.renewal.bulk_rows import (
    BulkRenewalResult,
    BulkRenewalRow,
    StagedRenewal,
    refused,
)
from dep_accounts.services.verdict import AppleIDChangedError, Intent, Refusal
from dep_accounts.users import User

PUSH_NAME = "APNs push certificate"
TOPIC_NOT_IN_BULK = (
    " Bulk renewal never replaces the topic: to replace it on purpose, upload this certificate "
    "on the APNs Certificate page."
)


class NoCurrentCertificateError(Refusal):
    code = "no_certificate"
    reaches_api = False


@sensitive_variables()
def content_token_row(token_file: TokenFile, *, now: datetime) -> BulkRenewalRow:
    """The content token a .vpptoken renews, checked with Apple and weighed as a renewal."""
    row = BulkRenewalRow(file_name=token_file.name, kind=FileKind.CONTENT_TOKEN)
    try:
        check = content_token_check(token_file=content_token_read(token_file), now=now)
        content_token = content_token_for_location(check)
    except Refusal as exc:
        return refused(row, exc)
    row.target_name, row.target_url = content_token.name, content_token.get_absolute_url()
    row.target_id = content_token.pk
    row.server_name = f"{check.location.location_name} ({check.location.country or '—'})"
    row.expires_at = check.token.expires_at
    row.apple_id = content_token.apple_id
    refusal = content_token_verdict(
        current_for(content_token, check),
        check,
        ContentTokenConfirmations(),
        now=now,
        our_mdm_id=settings.VPP_MDM_ID,
        intent=Intent.RENEW,
    )
    if isinstance(refusal, AnotherMDMError):
        # Flagged, not refused: the admin confirms taking the location over on the row.
        row.other_mdm = refusal.mdm_name
    elif refusal is not None:
        return refused(row, refusal)
    row.token_file = token_file.content
    return row


@sensitive_variables()
def push_row(token_file: TokenFile, *, apple_id: str, now: datetime) -> BulkRenewalRow:
    """Whether a .pem renews the portal's push certificate, weighed as on the APNs page."""
    row = BulkRenewalRow(
        file_name=token_file.name, kind=FileKind.PUSH_CERTIFICATE, target_name=PUSH_NAME
    )
    row.apple_id_label = APPLE_ID_CHANGED_LABEL
    try:
        content = push_certificate_read(token_file)
        push = push_certificate_requested()
        candidate = push_certificate_check(push=push, content=content, apple_id=apple_id)
    except Refusal as exc:
        return refused(row, exc)
    certificate = candidate.certificate
    row.target_url, row.target_id = reverse("dep_accounts:push"), push.pk
    row.server_name = certificate.topic
    row.expires_at = certificate.expires_at
    row.apple_id = candidate.apple_id or push.apple_id
    current = push_current_for(push)
    refusal = push_verdict(current, candidate, PushConfirmations(), now=now)
    if isinstance(refusal, AppleIDChangedError):
        row.previous_apple_id = refusal.previous
    elif isinstance(refusal, TopicChangedError):
        refused(row, refusal)
        row.problem = refusal.explanation + TOPIC_NOT_IN_BULK
        row.problem_url = row.target_url
        return row
    elif refusal is not None:
        return refused(row, refusal)
    if not current.topic:
        return refused(
            row,
            NoCurrentCertificateError(
                "The portal has no push certificate yet, so there is nothing to renew. Upload "
                "the first certificate on the APNs Certificate page, with the Apple ID that "
                "made it."
            ),
        )
    row.token_file = content
    return row


def refusal_record(row: BulkRenewalRow, actor: User | None) -> None:
    """Record a refused content token or push certificate row in the audit log, once."""
    assert row.refusal is not None, "only refused rows are recorded"
    if row.kind == FileKind.CONTENT_TOKEN:
        content_token = ContentToken.objects.filter(pk=row.target_id or 0).first()
        content_token_refusal_record(content_token, actor, row.refusal, row.file_name)
    else:
        push_refusal_record(actor=actor, refusal=row.refusal, file_name=row.file_name)


@sensitive_variables()
def content_token_apply(renewal: StagedRenewal, *, actor: User | None) -> BulkRenewalResult:
    kind = FileKind.CONTENT_TOKEN
    content_token = ContentToken.objects.filter(pk=renewal.target_id or 0).first()
    if content_token is None:
        deleted = "Its content token was deleted."
        return BulkRenewalResult(renewal.file_name, kind, "", problem=deleted)
    try:
        renewed = content_token_intake(
            content_token=content_token,
            upload=TokenFile(renewal.file_name, renewal.token_file),
            actor=actor,
            intent=Intent.RENEW,
            confirmations=ContentTokenConfirmations(take_over=renewal.take_over_confirmed),
        )
    except Refusal as refusal:
        return BulkRenewalResult(
            renewal.file_name, kind, content_token.name, problem=refusal.message
        )
    return BulkRenewalResult(renewal.file_name, kind, renewed.name, expires_at=renewed.expires_at)


@sensitive_variables()
def push_apply(renewal: StagedRenewal, *, actor: User | None) -> BulkRenewalResult:
    kind = FileKind.PUSH_CERTIFICATE
    try:
        stored = push_certificate_intake(
            upload=TokenFile(renewal.file_name, renewal.token_file),
            actor=actor,
            apple_id=renewal.apple_id,
            confirmations=PushConfirmations(apple_id_changed=renewal.apple_id_change_confirmed),
        )
    except Refusal as refusal:
        return BulkRenewalResult(renewal.file_name, kind, PUSH_NAME, problem=refusal.message)
    return BulkRenewalResult(renewal.file_name, kind, PUSH_NAME, expires_at=stored.expires_at)
