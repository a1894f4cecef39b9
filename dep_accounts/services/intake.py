"""One path for every server token file: read → decrypt → ask Apple → verdict → store → audit.

Edit and Add DEP Account, the API, `manage.py dep_account upload-token` and Bulk renewal all
call `token_intake`, or `token_preview` for a step that only shows what a file would do (its
stages `token_read`, `token_check` and `token_take` are public for Bulk renewal and scripts).
The rules are in `verdict`, once; a refusal is recorded in the audit log here, once, whoever
asked.

Add and Bulk renewal show a preview and ask Apple again when the admin confirms. That is on
purpose: every Download Token in Apple Business Manager resets the token downloaded before, so
a file Apple accepted at the preview may be dead a minute later, and only a second question
tells. The file itself waits in the session, encrypted, between the two steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import dep_errors
from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_decrypt, secret_encrypt
from dep_accounts.models import AuditEvent, ContentToken, DEPAccount, ServerToken
from dep_accounts.services.apple_access import dep_client_for_token
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.expiry import banner_refresh, token_state_for
from dep_accounts.services.verdict import (
    AppleRefusedTokenError,
    AppleUnreachableError,
    ConcurrentUploadError,
    Confirmations,
    Current,
    Intent,
    Refusal,
    TokenCheck,
    TokenFileError,
    TokenTooLargeError,
    verdict,
)
from dep_accounts.users import User

EMPTY_TOKEN_FILE = (
    "This file is empty: the download did not finish. In Apple Business Manager, click "
    "Download Token on the MDM server again and upload the new .p7m file."
)
NOTHING_CONFIRMED = Confirmations()


class TokenUpload(Protocol):
    """A file as it arrives: Django's uploads and `TokenFile` both are one."""

    # Read-only, so that the frozen `TokenFile` is one too.
    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    def read(self) -> bytes: ...

    def seek(self, offset: int) -> object: ...


@dataclass(frozen=True)
class TokenFile:
    """A token file already in memory (the command line, Bulk renewal, a staged upload).

    `size` is the file's whole size when only its first bytes were read.
    """

    name: str
    content: bytes = field(repr=False)
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.content))

    def read(self) -> bytes:
        return self.content

    def seek(self, offset: int) -> None:
        """In memory already: there is nothing to rewind."""


@sensitive_variables()
def token_read(upload: TokenUpload) -> bytes:
    """The file's bytes; one too large for a server token is refused before it is read."""
    return upload_read(
        upload,
        max_bytes=settings.DEP_TOKEN_MAX_BYTES,
        too_large="This file is {size}; a server token is about 2 KB. Choose the .p7m file that "
        "Download Token in Apple Business Manager saved.",
        empty=EMPTY_TOKEN_FILE,
    )


@sensitive_variables()
def upload_read(upload: TokenUpload, *, max_bytes: int, too_large: str, empty: str) -> bytes:
    """Any credential file's bytes: past `max_bytes` (`too_large` names {size}) it is refused
    unread, and an empty one is refused with `empty`."""
    if upload.size > max_bytes:
        raise TokenTooLargeError(too_large.format(size=filesizeformat(upload.size)))
    content = upload.read()
    if not content:
        raise TokenFileError(empty)
    return content


@sensitive_variables()
def token_check(
    *, account: DEPAccount, token_file: bytes, now: datetime | None = None
) -> TokenCheck:
    """Decrypt a .p7m with the account's key pair and, if the file itself passes, ask Apple."""
    key_pair = account.key_pair
    try:
        token = apple_envelope.server_token_decrypt(
            token_file,
            private_key_pem=secret_decrypt(key_pair.private_key_encrypted),
            certificate_pem=key_pair.certificate_pem.encode(),
            # Made and validated by the portal, and stored under Fernet since.
            key_validated=True,
        )
    except apple_token.ServerTokenError as exc:
        raise TokenFileError(exc.message) from exc
    refusal = verdict(
        Current(account=account),
        TokenCheck(token=token),
        Confirmations(),
        now=now or timezone.now(),
    )
    if refusal is not None:
        raise refusal
    return TokenCheck(token=token, apple_account=_apple_account(token))


@sensitive_variables()
def _apple_account(token: apple_token.ServerTokenCredentials):
    try:
        return dep_client_for_token(token).account()
    except dep_errors.TokenRejectedError as exc:
        raise AppleRefusedTokenError(
            "Apple does not accept this server token: it was replaced by a newer download in "
            "Apple Business Manager, or revoked. Upload the token you downloaded last, or "
            "download a new one in ABM and upload that."
        ) from exc
    except dep_errors.TermsNotSignedError as exc:
        raise AppleRefusedTokenError(
            "Apple will not use this token until your organisation accepts the latest terms and "
            "conditions. Sign in to Apple Business Manager as an administrator, accept them, "
            "then upload the token again."
        ) from exc
    except (dep_errors.AppleUnavailableError, dep_errors.ThrottledError) as exc:
        raise AppleUnreachableError(
            "Apple's DEP service could not be reached to verify this token "
            f"({exc.message}). Nothing was changed; try the upload again in a few minutes."
        ) from exc
    except dep_errors.DEPError as exc:
        raise AppleRefusedTokenError(
            f"Apple refused this server token: {exc.message} Nothing was changed."
        ) from exc


def current_for(account: DEPAccount, check: TokenCheck) -> Current:
    """What the verdict weighs the checked file against, as the database has it now."""
    found = check.apple_account
    holder = None
    if found is not None:
        holder = (
            DEPAccount.objects.filter(server_uuid=found.server_uuid).exclude(pk=account.pk).first()
        )
    return Current(
        account=account,
        token=account.server_tokens.filter(is_current=True).first() if account.pk else None,
        holder=holder,
    )


@dataclass(frozen=True)
class TokenPreview:
    """A file that passed every rule: its bytes, to stage, and what Apple said about it."""

    token_file: TokenFile
    check: TokenCheck


@sensitive_variables()
def token_preview(
    *,
    account: DEPAccount,
    upload: TokenUpload,
    actor: User | None,
    intent: Intent = Intent.ANY,
    confirmations: Confirmations = NOTHING_CONFIRMED,
) -> TokenPreview:
    """Read, decrypt, ask Apple and weigh a file, storing nothing; record and raise a refusal."""
    try:
        token_file = token_read(upload)
        check = token_check(account=account, token_file=token_file)
        refusal = verdict(
            current_for(account, check), check, confirmations, now=timezone.now(), intent=intent
        )
        if refusal is not None:
            raise refusal
    except Refusal as refusal:
        refusal_record(account=account, actor=actor, refusal=refusal, file_name=upload.name)
        raise
    return TokenPreview(token_file=TokenFile(upload.name, token_file), check=check)


@sensitive_variables()
def token_intake(
    *,
    account: DEPAccount,
    upload: TokenUpload,
    actor: User | None,
    intent: Intent = Intent.ANY,
    confirmations: Confirmations = NOTHING_CONFIRMED,
) -> ServerToken:
    """Take a token file for an account by every rule, or record and raise why not."""
    try:
        check = token_check(account=account, token_file=token_read(upload))
    except Refusal as refusal:
        refusal_record(account=account, actor=actor, refusal=refusal, file_name=upload.name)
        raise
    return token_take(
        account=account,
        check=check,
        actor=actor,
        file_name=upload.name,
        intent=intent,
        confirmations=confirmations,
    )


@sensitive_variables()
def token_take(
    *,
    account: DEPAccount,
    check: TokenCheck,
    actor: User | None,
    file_name: str = "",
    intent: Intent = Intent.ANY,
    confirmations: Confirmations = NOTHING_CONFIRMED,
) -> ServerToken:
    """Store a checked token if the verdict, taken under the account's lock, allows it."""
    try:
        with transaction.atomic():
            locked = DEPAccount.objects.select_for_update().get(pk=account.pk)
            current = current_for(locked, check)
            refusal = verdict(current, check, confirmations, now=timezone.now(), intent=intent)
            if refusal is not None:
                raise refusal
            server_token = _token_store(
                current=current,
                check=check,
                actor=actor,
                file_name=file_name,
                apple_id_change_confirmed=confirmations.apple_id_changed,
            )
    except IntegrityError as exc:
        refusal = ConcurrentUploadError(
            "Another upload for this MDM server finished first. Reload the DEP Accounts list."
        )
        refusal_record(account=account, actor=actor, refusal=refusal, file_name=file_name)
        raise refusal from exc
    except Refusal as refusal:
        refusal_record(account=account, actor=actor, refusal=refusal, file_name=file_name)
        raise
    account.refresh_from_db()
    banner_refresh()
    return server_token


def refusal_record(
    *,
    account: DEPAccount | None,
    actor: User | None,
    refusal: Refusal,
    file_name: str,
    action: str = AuditEvent.Action.TOKEN_REJECTED,
    what: str = "Token upload",
    kind: str = "server_token",
    content_token: ContentToken | None = None,
) -> None:
    """The one trace of a refused credential file, whichever entry point it came through."""
    audit_record(
        action=action,
        outcome=AuditEvent.Outcome.FAILURE,
        message=f"{what} rejected: {refusal.message}",
        actor=actor,
        account=account,
        content_token=content_token,
        details={"reason": refusal.code, "file_name": file_name[:255], "kind": kind},
    )


@sensitive_variables()
def _token_store(
    *,
    current: Current,
    check: TokenCheck,
    actor: User | None,
    file_name: str,
    apple_id_change_confirmed: bool,
) -> ServerToken:
    now = timezone.now()
    account, found, previous = current.account, check.apple_account, current.token
    assert found is not None, "token_take stores only a check that asked Apple"
    if previous is not None and previous.admin_apple_id not in ("", found.admin_id):
        audit_record(
            action=AuditEvent.Action.APPLE_ID_CHANGED,
            message=f"Confirmed that the Apple ID managing “{account.server_name}” changed "
            f"from {previous.admin_apple_id} to {found.admin_id}.",
            actor=actor,
            account=account,
            details={"previous": previous.admin_apple_id, "new": found.admin_id},
        )
    ServerToken.objects.filter(account=account, is_current=True).update(
        is_current=False, replaced_at=now
    )
    server_token = ServerToken.objects.create(
        account=account,
        secrets_encrypted=secret_encrypt(check.token.to_json().encode()),
        access_token_expiry=check.token.access_token_expiry,
        consumer_key_fingerprint=check.token.consumer_key_fingerprint,
        server_uuid=found.server_uuid,
        admin_apple_id=found.admin_id,
        apple_id_change_confirmed=apple_id_change_confirmed and previous is not None,
        file_name=file_name[:255],
        uploaded_by=actor_user(actor),
        uploaded_at=now,
    )
    previous_expiry = account.token_expires_at
    account.server_name = found.server_name
    account.server_uuid = found.server_uuid
    account.org_name = found.org_name
    account.org_id = found.org_id
    account.org_email = found.org_email
    account.org_type = found.org_type
    account.admin_apple_id = found.admin_id
    account.token_expires_at = check.token.access_token_expiry
    account.state, account.state_detail = token_state_for(
        expires_at=account.token_expires_at, now=now
    )
    # The new token has arrived: a guarded renewal, if one was started, is over.
    account.renewal_started_at = account.renewal_started_by = account.renewal_checked_at = None
    account.old_token_rejected_at = None
    account.save()
    _taken_record(account, server_token, previous, previous_expiry, actor, file_name)
    return server_token


def _taken_record(
    account: DEPAccount,
    server_token: ServerToken,
    previous: ServerToken | None,
    previous_expiry: datetime | None,
    actor: User | None,
    file_name: str,
) -> None:
    if previous is None:
        audit_record(
            action=AuditEvent.Action.ACCOUNT_CREATED,
            message=f"Added DEP account for MDM server “{account.server_name}” "
            f"({account.org_name}); token expires {account.token_expires_at:%-d %b %Y}.",
            actor=actor,
            account=account,
            details={"fingerprint": server_token.consumer_key_fingerprint, "file_name": file_name},
        )
        return
    audit_record(
        action=AuditEvent.Action.TOKEN_RENEWED,
        message=f"Server token of “{account.server_name}” renewed: expires "
        f"{server_token.access_token_expiry:%-d %b %Y}"
        + (f" (was {previous_expiry:%-d %b %Y})." if previous_expiry else "."),
        actor=actor,
        account=account,
        details={"fingerprint": server_token.consumer_key_fingerprint, "file_name": file_name},
    )
