"""Bulk renewal: many .p7m files at once, each matched to the DEP account it renews.

ABM names every download alike, so a file's name says nothing. Each file is matched by the
public key it is encrypted for, read from its CMS recipient without decrypting, then decrypted
with that account's key only (RSA for every file and every account would be slow), and Apple
says which MDM server it belongs to. Each file then meets the same `verdict` as any other upload
(intent RENEW). The preview stores nothing but its audit trail; `bulk_renewal_apply` takes each
file through `token_intake`, which asks Apple again (see `services.intake` for why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import token as apple_token
from dep_accounts.models import DEPAccount, ServerToken
from dep_accounts.services.intake import (
    TokenFile,
    current_for,
    refusal_record,
    token_check,
    token_intake,
    token_read,
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


@dataclass
class BulkRenewalRow:
    """One uploaded file: the account it renews, or why it will not be applied."""

    file_name: str
    account: DEPAccount | None = None
    server_name: str = ""
    expires_at: datetime | None = None
    apple_id: str = ""
    # The Apple ID of the current token when this one was downloaded by another.
    previous_apple_id: str = ""
    problem: str = ""
    reason: str = ""
    refusal: Refusal | None = None
    token_file: bytes = field(default=b"", repr=False)

    @property
    def applies(self) -> bool:
        return not self.problem

    @property
    def apple_id_changed(self) -> bool:
        return bool(self.previous_apple_id)


@dataclass(frozen=True)
class StagedRenewal:
    """A row of a confirmed preview, as `bulk_renewal_apply` takes it."""

    account_id: int
    file_name: str
    token_file: bytes = field(repr=False)
    apple_id_change_confirmed: bool = False


@dataclass(frozen=True)
class BulkRenewalResult:
    file_name: str
    account: DEPAccount | None
    server_token: ServerToken | None
    problem: str = ""


@sensitive_variables()
def bulk_renewal_preview(
    *,
    token_files: Sequence[TokenFile],
    actor: User | None,
    now: datetime | None = None,
) -> list[BulkRenewalRow]:
    """Which file renews which account, checked with Apple; stores nothing but the audit log."""
    now = now or timezone.now()
    accounts = _accounts_by_recipient()
    rows = [_row_for(token_file, accounts, now) for token_file in token_files]
    _duplicates_skip(rows)
    for row in rows:
        if row.refusal is not None:
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
    try:
        content = token_read(token_file)
        recipients = apple_envelope.server_token_recipients(content)
    except apple_token.ServerTokenError as exc:
        return _refused(row, TokenFileError(exc.message))
    except Refusal as exc:
        return _refused(row, exc)
    candidates = [account for r in recipients for account in accounts.get(r, [])]
    if not candidates:
        return _refused(row, NoAccountKeyError(NO_ACCOUNT_KEY))
    row.account = candidates[0]
    try:
        check = token_check(account=candidates[0], token_file=content, now=now)
    except Refusal as exc:
        return _refused(row, exc)
    found = check.apple_account
    assert found is not None, "token_check asks Apple"
    row.server_name = found.server_name
    row.expires_at = check.token.access_token_expiry
    row.apple_id = found.admin_id
    matching = [a for a in candidates if a.server_uuid == found.server_uuid]
    row.account = account = (matching or candidates)[0]
    current = current_for(account, check)
    refusal = verdict(current, check, Confirmations(), now=now, intent=Intent.RENEW)
    if isinstance(refusal, AppleIDChangedError):
        # Flagged, not refused: the admin confirms the change on the row.
        row.previous_apple_id = refusal.previous
    elif refusal is not None:
        return _refused(row, refusal)
    row.token_file = content
    return row


def _refused(row: BulkRenewalRow, refusal: Refusal) -> BulkRenewalRow:
    row.refusal, row.problem, row.reason = refusal, refusal.message, refusal.code
    return row


def _duplicates_skip(rows: list[BulkRenewalRow]) -> None:
    """Two files for one account: the one that expires last is applied, the others skipped."""
    # A row that applies has its account and expiry: the pair kept is the later expiry.
    kept: dict[int, tuple[datetime, BulkRenewalRow]] = {}
    for row in rows:
        account, expires_at = row.account, row.expires_at
        if not row.applies or account is None or expires_at is None:
            continue
        if account.pk not in kept:
            kept[account.pk] = (expires_at, row)
            continue
        other_expires_at, other = kept[account.pk]
        if expires_at > other_expires_at:
            kept[account.pk] = (expires_at, row)
            row, other, other_expires_at = other, row, expires_at
        _refused(
            row,
            DuplicateFileError(
                f"“{other.file_name}” renews “{account.name}” too, and expires last "
                f"({other_expires_at:%-d %b %Y %H:%M} UTC): this file is skipped."
            ),
        )
        row.token_file = b""


@sensitive_variables()
def bulk_renewal_apply(
    *, renewals: Sequence[StagedRenewal], actor: User | None
) -> list[BulkRenewalResult]:
    """Renew each account from its confirmed file; a failure stops only its own row."""
    results = []
    for renewal in renewals:
        account = DEPAccount.objects.filter(pk=renewal.account_id).first()
        if account is None:
            results.append(
                BulkRenewalResult(renewal.file_name, None, None, "Its DEP account was deleted.")
            )
            continue
        try:
            server_token = token_intake(
                account=account,
                upload=TokenFile(renewal.file_name, renewal.token_file),
                actor=actor,
                intent=Intent.RENEW,
                confirmations=Confirmations(apple_id_changed=renewal.apple_id_change_confirmed),
            )
        except Refusal as refusal:
            results.append(BulkRenewalResult(renewal.file_name, account, None, refusal.message))
        else:
            results.append(BulkRenewalResult(renewal.file_name, account, server_token))
    return results
