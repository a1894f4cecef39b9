"""Bulk renewal: many .p7m files at once, each matched to the DEP account it renews.

ABM names every download alike, so a file's name says nothing. Each file is matched by the
public key it is encrypted for, read from its CMS recipient without decrypting, then decrypted
with that account's key only (RSA for every file and every account would be slow), and Apple
says which MDM server it belongs to. The preview stores nothing but its audit trail;
`bulk_renewal_apply` renews each account in its own transaction through `token_renew`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import token as apple_token
from dep_accounts.models import AuditEvent, DEPAccount, ServerToken
from dep_accounts.services.audit import audit_record
from dep_accounts.services.tokens import (
    AppleIDChangedError,
    TokenUploadError,
    token_check,
    token_renew,
)

NO_ACCOUNT_KEY = (
    "This file is encrypted for a public key no DEP account here has. In Apple Business "
    "Manager, check which MDM server it was downloaded from: that server has the public key "
    "of another MDM product or of a deleted DEP account."
)


@dataclass(frozen=True)
class TokenFile:
    name: str
    content: bytes = field(repr=False)


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


def bulk_renewal_preview(
    *,
    token_files: Sequence[TokenFile],
    actor: AbstractBaseUser | None,
    now: datetime | None = None,
) -> list[BulkRenewalRow]:
    """Which file renews which account, checked with Apple; stores nothing but the audit log."""
    now = now or timezone.now()
    accounts = _accounts_by_recipient()
    current_tokens = {
        token.account_id: token
        for token in ServerToken.objects.filter(is_current=True).defer("secrets_encrypted")
    }
    rows = [_row_for(token_file, accounts, current_tokens, now) for token_file in token_files]
    _duplicates_skip(rows)
    for row in rows:
        if not row.applies:
            audit_record(
                action=AuditEvent.Action.TOKEN_REJECTED,
                outcome=AuditEvent.Outcome.FAILURE,
                message=f"Bulk renewal: “{row.file_name}” not applied: {row.problem}",
                actor=actor,
                account=row.account,
                details={"reason": row.reason, "file_name": row.file_name[:255]},
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


def _row_for(
    token_file: TokenFile,
    accounts: dict[apple_envelope.RecipientID, list[DEPAccount]],
    current_tokens: dict[int, ServerToken],
    now: datetime,
) -> BulkRenewalRow:
    row = BulkRenewalRow(file_name=token_file.name)
    if len(token_file.content) > settings.DEP_TOKEN_MAX_BYTES:
        return _refused(
            row,
            f"This file is over {filesizeformat(settings.DEP_TOKEN_MAX_BYTES)}; a server token "
            "is about 2 KB. Choose the .p7m files that Download Token in ABM saved.",
            reason="bad_file",
        )
    try:
        recipients = apple_envelope.server_token_recipients(token_file.content)
    except apple_token.ServerTokenError as exc:
        return _refused(row, exc.message, reason="bad_file")
    candidates = [account for r in recipients for account in accounts.get(r, [])]
    if not candidates:
        return _refused(row, NO_ACCOUNT_KEY, reason="no_account")
    row.account = candidates[0]
    try:
        check = token_check(account=candidates[0], token_file=token_file.content, now=now)
    except TokenUploadError as exc:
        return _refused(row, exc.message, reason=exc.code)
    found = check.apple_account
    row.server_name = found.server_name
    row.expires_at = check.token.access_token_expiry
    row.apple_id = found.admin_id
    matching = [a for a in candidates if a.server_uuid == found.server_uuid]
    if not matching:
        return _refused(row, _wrong_server(candidates[0], found.server_name), reason="wrong_server")
    row.account = account = matching[0]
    current = current_tokens.get(account.pk)
    if current is None:
        return row
    if current.consumer_key_fingerprint == check.token.consumer_key_fingerprint and (
        current.access_token_expiry == check.token.access_token_expiry
    ):
        return _refused(
            row,
            "This is the token already in use. In Apple Business Manager, click Download Token "
            "on this MDM server and upload the new file.",
            reason="older_token",
        )
    if check.token.access_token_expiry < current.access_token_expiry:
        return _refused(
            row,
            f"This token expires on {row.expires_at:%-d %b %Y}, before the current one "
            f"({current.access_token_expiry:%-d %b %Y}): it is an older download.",
            reason="older_token",
        )
    if current.admin_apple_id and found.admin_id != current.admin_apple_id:
        row.previous_apple_id = current.admin_apple_id
    row.token_file = token_file.content
    return row


def _wrong_server(account: DEPAccount, server_name: str) -> str:
    if account.server_uuid is None:
        return (
            f"“{account.name}” is still being added: upload this file on its Add DEP Account page."
        )
    return (
        f"This token is for the MDM server “{server_name}”, but it is encrypted for the public "
        f"key of “{account.name}”, whose MDM server (UUID {account.server_uuid}) differs. "
        "Add it as a new DEP account, or download the token of the right server in ABM."
    )


def _refused(row: BulkRenewalRow, problem: str, *, reason: str) -> BulkRenewalRow:
    row.problem, row.reason = problem, reason
    return row


def _duplicates_skip(rows: list[BulkRenewalRow]) -> None:
    """Two files for one account: the one that expires last is applied, the others skipped."""
    kept: dict[int, BulkRenewalRow] = {}
    for row in rows:
        if not row.applies:
            continue
        other = kept.get(row.account.pk)
        if other is None:
            kept[row.account.pk] = row
            continue
        if row.expires_at > other.expires_at:
            kept[row.account.pk], row, other = row, other, row
        _refused(
            row,
            f"“{other.file_name}” renews “{other.account.name}” too, and expires last "
            f"({other.expires_at:%-d %b %Y %H:%M} UTC): this file is skipped.",
            reason="duplicate",
        )
        row.token_file = b""


def bulk_renewal_apply(
    *, renewals: Sequence[StagedRenewal], actor: AbstractBaseUser | None
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
            server_token = token_renew(
                account=account,
                token_file=renewal.token_file,
                actor=actor,
                file_name=renewal.file_name,
                apple_id_change_confirmed=renewal.apple_id_change_confirmed,
            )
        except AppleIDChangedError as exc:
            problem = (
                f"It was downloaded by {exc.found}, not {exc.previous}, and the change was not "
                "confirmed. Tick “Confirm the new Apple ID” on its row and renew again."
            )
            results.append(BulkRenewalResult(renewal.file_name, account, None, problem))
        except TokenUploadError as exc:
            results.append(BulkRenewalResult(renewal.file_name, account, None, exc.message))
        else:
            results.append(BulkRenewalResult(renewal.file_name, account, server_token))
    return results
