"""Bulk renewal: many credential files at once, each matched to what it renews.

One upload takes DEP server tokens (.p7m), Apps and Books content tokens (.vpptoken) and the
APNs push certificate (.pem); `file_kinds` tells them apart by their bytes, and the content
tokens and the push certificate go through their own intake (`bulk_kinds`).

ABM names every server token download alike, so a file's name says nothing. Each file is matched
by the public key it is encrypted for, read from its CMS recipient without decrypting, then
decrypted with that account's key only (RSA for every file and every account would be slow), and
Apple says which MDM server it belongs to. Each file then meets the same `verdict` as any other
upload (intent RENEW). The preview stores nothing but its audit trail; `bulk_renewal_apply` takes
each file through its kind's intake, which asks Apple again (see `services.intake` for why).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import token as apple_token
from dep_accounts.apple.file_kinds import FileKind, file_kind_detect
from dep_accounts.models import DEPAccount
from dep_accounts.services.intake import (
    TokenFile,
    current_for,
    refusal_record,
    token_check,
    token_intake,
    token_read,
)
from dep_accounts.services.renewal import bulk_kinds
from dep_accounts.services.renewal.bulk_rows import (
    BulkRenewalResult,
    BulkRenewalRow,
    StagedRenewal,
    refused,
)
from dep_accounts.services.verdict import (
    AppleIDChangedError,
    Confirmations,
    Intent,
    Refusal,
    TokenFileError,
    verdict,
)
from dep_accounts.users import User

NO_ACCOUNT_KEY = (
    "This file is encrypted for a public key no DEP account here has. In Apple Business "
    "Manager, check which MDM server it was downloaded from: that server has the public key "
    "of another MDM product or of a deleted DEP account."
)


class NoAccountKeyError(Refusal):
    code = "no_account"
    reaches_api = False


class DuplicateFileError(Refusal):
    code = "duplicate"
    reaches_api = False


@sensitive_variables()
def bulk_renewal_preview(
    *,
    token_files: Sequence[TokenFile],
    actor: User | None,
    push_apple_id: str = "",
    now: datetime | None = None,
) -> list[BulkRenewalRow]:
    """What each file renews, checked with Apple; stores nothing but the audit log.

    `push_apple_id` is the Apple ID a push certificate was made with, when the admin names one.
    """
    now = now or timezone.now()
    accounts = _accounts_by_recipient()
    rows = []
    for token_file in token_files:
        kind = file_kind_detect(token_file.content)
        if kind == FileKind.CONTENT_TOKEN:
            rows.append(bulk_kinds.content_token_row(token_file, now=now))
        elif kind == FileKind.PUSH_CERTIFICATE:
            rows.append(bulk_kinds.push_row(token_file, apple_id=push_apple_id, now=now))
        else:
            rows.append(_row_for(token_file, accounts, now))
    _duplicates_skip(rows)
    for row in rows:
        if row.refusal is None:
            continue
        if row.kind in (FileKind.CONTENT_TOKEN, FileKind.PUSH_CERTIFICATE):
            bulk_kinds.refusal_record(row, actor)
        else:
            refusal_record(
                account=row.account, actor=actor, refusal=row.refusal, file_name=row.file_name
            )
    return rows


def _accounts_by_recipient() -> dict[apple_envelope.RecipientID, list[DEPAccount]]:
    accounts: dict[apple_envelope.RecipientID, list[DEPAccount]] = {}
    for account in DEPAccount.objects.filter(key_pair__isnull=False).select_related("key_pair"):
        recipient = apple_envelope.certificate_recipient_id(
            account.key_pair.certificate_pem.encode()
        )
        accounts.setdefault(recipient, []).append(account)
    return accounts


@sensitive_variables()
def _row_for(
    token_file: TokenFile,
    accounts: dict[apple_envelope.RecipientID, list[DEPAccount]],
    now: datetime,
) -> BulkRenewalRow:
    row = BulkRenewalRow(file_name=token_file.name)
    # Any other kind is refused by the server token's intake, which names it.
    row.kind = file_kind_detect(token_file.content)
    try:
        content = token_read(token_file)
        recipients = apple_envelope.server_token_recipients(content)
    except apple_token.ServerTokenError as exc:
        return refused(row, TokenFileError(exc.message))
    except Refusal as exc:
        return refused(row, exc)
    candidates = [account for r in recipients for account in accounts.get(r, [])]
    if not candidates:
        return refused(row, NoAccountKeyError(NO_ACCOUNT_KEY))
    row.account = candidates[0]
    try:
        check = token_check(account=candidates[0], token_file=content, now=now)
    except Refusal as exc:
        return refused(row, exc)
    found = check.apple_account
    assert found is not None, "token_check asks Apple"
    row.server_name = found.server_name
    row.expires_at = check.token.access_token_expiry
    row.apple_id = found.admin_id
    matching = [a for a in candidates if a.server_uuid == found.server_uuid]
    row.account = account = (matching or candidates)[0]
    row.target_name, row.target_url = account.name, account.get_absolute_url()
    row.target_id, row.kind = account.pk, FileKind.SERVER_TOKEN
    current = current_for(account, check)
    refusal = verdict(current, check, Confirmations(), now=now, intent=Intent.RENEW)
    if isinstance(refusal, AppleIDChangedError):
        # Flagged, not refused: the admin confirms the change on the row.
        row.previous_apple_id = refusal.previous
    elif refusal is not None:
        return refused(row, refusal)
    row.token_file = content
    return row


def _duplicates_skip(rows: list[BulkRenewalRow]) -> None:
    """Two files for one credential: the one that expires last is applied, the others skipped."""
    # A row that applies has its target and expiry: the pair kept is the later expiry.
    kept: dict[tuple[str, int], tuple[datetime, BulkRenewalRow]] = {}
    for row in rows:
        target_id, expires_at = row.target_id, row.expires_at
        if not row.applies or target_id is None or expires_at is None:
            continue
        key = (row.kind, target_id)
        if key not in kept:
            kept[key] = (expires_at, row)
            continue
        other_expires_at, other = kept[key]
        if expires_at > other_expires_at:
            kept[key] = (expires_at, row)
            row, other, other_expires_at = other, row, expires_at
        refused(
            row,
            DuplicateFileError(
                f"“{other.file_name}” renews “{row.target_name}” too, and expires last "
                f"({other_expires_at:%-d %b %Y %H:%M} UTC): this file is skipped."
            ),
        )
        row.token_file = b""


@sensitive_variables()
def bulk_renewal_apply(
    *, renewals: Sequence[StagedRenewal], actor: User | None
) -> list[BulkRenewalResult]:
    """Renew what each confirmed file is for, each through its kind's intake in its own
    transaction: a refusal stops only its own row."""
    results = []
    for renewal in renewals:
        if renewal.kind == FileKind.CONTENT_TOKEN:
            results.append(bulk_kinds.content_token_apply(renewal, actor=actor))
        elif renewal.kind == FileKind.PUSH_CERTIFICATE:
            results.append(bulk_kinds.push_apply(renewal, actor=actor))
        else:
            results.append(_server_token_apply(renewal, actor=actor))
    return results


@sensitive_variables()
def _server_token_apply(renewal: StagedRenewal, *, actor: User | None) -> BulkRenewalResult:
    account = DEPAccount.objects.filter(pk=renewal.account_id or 0).first()
    kind = FileKind.SERVER_TOKEN
    if account is None:
        return BulkRenewalResult(
            renewal.file_name, kind, "", problem="Its DEP account was deleted."
        )
    try:
        server_token = token_intake(
            account=account,
            upload=TokenFile(renewal.file_name, renewal.token_file),
            actor=actor,
            intent=Intent.RENEW,
            confirmations=Confirmations(apple_id_changed=renewal.apple_id_change_confirmed),
        )
    except Refusal as refusal:
        return BulkRenewalResult(renewal.file_name, kind, account.name, problem=refusal.message)
    return BulkRenewalResult(
        renewal.file_name, kind, account.name, expires_at=server_token.access_token_expiry
    )
