"""One entry point for a server token file from a script: the first token or a renewal.

The JSON API and `manage.py dep_account upload-token` take a file for any account; the console
splits the same work over its Add and Edit pages. Both end in the services of `tokens`.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.services import tokens
from dep_accounts.services.audit import audit_record


def server_token_upload(
    *,
    account: DEPAccount,
    token_file: bytes,
    actor: AbstractBaseUser | None,
    file_name: str = "",
    apple_id_change_confirmed: bool = False,
) -> DEPAccount:
    """Add the account's first server token, or renew its current one, by the console's rules."""
    if account.token_expires_at is not None:
        tokens.token_renew(
            account=account,
            token_file=token_file,
            actor=actor,
            file_name=file_name,
            apple_id_change_confirmed=apple_id_change_confirmed,
        )
        return account
    try:
        check = tokens.token_check(account=account, token_file=token_file)
        return tokens.account_token_add(
            account=account, check=check, actor=actor, file_name=file_name
        )
    except tokens.TokenUploadError as exc:
        server_token_refusal_record(
            account=account, actor=actor, message=exc.message, reason=exc.code, file_name=file_name
        )
        raise


def server_token_refusal_record(
    *,
    account: DEPAccount,
    actor: AbstractBaseUser | None,
    message: str,
    reason: str,
    file_name: str = "",
) -> None:
    """Keep a trace of a refused token file, as the console does."""
    audit_record(
        action=AuditEvent.Action.TOKEN_REJECTED,
        outcome=AuditEvent.Outcome.FAILURE,
        message=f"Token upload rejected: {message}",
        actor=actor,
        account=account,
        details={"reason": reason, "file_name": file_name[:255]},
    )
