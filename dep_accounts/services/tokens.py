"""DEP accounts, server token upload and renewal, expiry state and the banner.

Views, tasks and management commands all call these functions; none of them touches a request.
Every failure raises a `TokenUploadError` whose message tells the admin what to do next, and
leaves the account and its current token exactly as they were.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import keypair as apple_keypair
from dep_accounts.apple import schema as apple_schema
from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_decrypt, secret_encrypt
from dep_accounts.models import (
    AuditEvent,
    Banner,
    DEPAccount,
    KeyPair,
    ServerToken,
)
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.webhooks import webhooks_emit_account_state

logger = logging.getLogger(__name__)

State = DEPAccount.State


class TokenUploadError(Exception):
    """An uploaded server token was not taken; `message` says why and what to do."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenFileError(TokenUploadError):
    code = "bad_file"


class AppleRefusedTokenError(TokenUploadError):
    code = "apple_refused"


class AppleUnreachableError(TokenUploadError):
    code = "apple_unreachable"


class WrongServerError(TokenUploadError):
    """The token belongs to another MDM server than this account's."""

    code = "wrong_server"

    def __init__(self, message: str, *, found: apple_schema.Account, existing: DEPAccount | None):
        super().__init__(message)
        self.found = found
        self.existing = existing


class AppleIDChangedError(TokenUploadError):
    """The token was downloaded by another Apple ID; the admin must confirm the change."""

    code = "apple_id_changed"

    def __init__(self, message: str, *, previous: str, found: str) -> None:
        super().__init__(message)
        self.previous = previous
        self.found = found


class OlderTokenError(TokenUploadError):
    code = "older_token"


class ConcurrentUploadError(TokenUploadError):
    code = "concurrent_upload"


@dataclass(frozen=True)
class TokenCheck:
    """A decrypted server token together with what Apple says it belongs to."""

    token: apple_token.ServerTokenCredentials
    apple_account: apple_schema.Account


def dep_client_for_token(token: apple_token.ServerTokenCredentials) -> apple_client.DEPClient:
    return apple_client.DEPClient(
        consumer_key=token.consumer_key,
        consumer_secret=token.consumer_secret,
        access_token=token.access_token,
        access_secret=token.access_secret,
        base_url=settings.DEP_API_URL,
        timeout=(5, settings.DEP_API_TIMEOUT_SECONDS),
    )


def server_token_credentials(server_token: ServerToken) -> apple_token.ServerTokenCredentials:
    return apple_token.ServerTokenCredentials.from_json(
        secret_decrypt(server_token.secrets_encrypted).decode()
    )


def account_create(*, actor: AbstractBaseUser | None, display_name: str = "") -> DEPAccount:
    """A new DEP account awaiting its first token, with the key pair ABM encrypts tokens for."""
    with transaction.atomic():
        account = DEPAccount.objects.create(display_name=display_name)
        key_pair = apple_keypair.key_pair_generate(common_name=f"mdmportal-dep-{account.pk}")
        KeyPair.objects.create(
            account=account,
            private_key_encrypted=secret_encrypt(key_pair.private_key_pem),
            certificate_pem=key_pair.certificate_pem.decode(),
        )
    return account


def token_check(
    *, account: DEPAccount, token_file: bytes, now: datetime | None = None
) -> TokenCheck:
    """Decrypt an uploaded .p7m with the account's key pair and ask Apple whose it is."""
    key_pair = account.key_pair
    try:
        token = apple_envelope.server_token_decrypt(
            token_file,
            private_key_pem=secret_decrypt(key_pair.private_key_encrypted),
            certificate_pem=key_pair.certificate_pem.encode(),
        )
        apple_token.server_token_check_usable(token, now=now or timezone.now())
    except apple_token.ServerTokenError as exc:
        raise TokenFileError(exc.message) from exc
    try:
        apple_account = dep_client_for_token(token).account()
    except apple_client.TokenRejectedError as exc:
        raise AppleRefusedTokenError(
            "Apple does not accept this server token: it was replaced by a newer download in "
            "Apple Business Manager, or revoked. Upload the token you downloaded last, or "
            "download a new one in ABM and upload that."
        ) from exc
    except apple_client.TermsNotSignedError as exc:
        raise AppleRefusedTokenError(
            "Apple will not use this token until your organisation accepts the latest terms and "
            "conditions. Sign in to Apple Business Manager as an administrator, accept them, "
            "then upload the token again."
        ) from exc
    except (apple_client.AppleUnavailableError, apple_client.ThrottledError) as exc:
        raise AppleUnreachableError(
            "Apple's DEP service could not be reached to verify this token "
            f"({exc.message}). Nothing was changed; try the upload again in a few minutes."
        ) from exc
    except apple_client.DEPError as exc:
        raise AppleRefusedTokenError(
            f"Apple refused this server token: {exc.message} Nothing was changed."
        ) from exc
    return TokenCheck(token=token, apple_account=apple_account)


def _token_store(
    *,
    account: DEPAccount,
    check: TokenCheck,
    actor: AbstractBaseUser | None,
    file_name: str,
    apple_id_change_confirmed: bool,
    now: datetime,
) -> ServerToken:
    ServerToken.objects.filter(account=account, is_current=True).update(
        is_current=False, replaced_at=now
    )
    server_token = ServerToken.objects.create(
        account=account,
        secrets_encrypted=secret_encrypt(check.token.to_json().encode()),
        access_token_expiry=check.token.access_token_expiry,
        consumer_key_fingerprint=check.token.consumer_key_fingerprint,
        server_uuid=check.apple_account.server_uuid,
        admin_apple_id=check.apple_account.admin_id,
        apple_id_change_confirmed=apple_id_change_confirmed,
        file_name=file_name[:255],
        uploaded_by=actor_user(actor),
        uploaded_at=now,
    )
    found = check.apple_account
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
    return server_token


def account_token_add(
    *, account: DEPAccount, check: TokenCheck, actor: AbstractBaseUser | None, file_name: str = ""
) -> DEPAccount:
    """Take a checked token as the first token of a new DEP account."""
    now = timezone.now()
    existing = DEPAccount.objects.filter(server_uuid=check.apple_account.server_uuid).first()
    if existing is not None and existing.pk != account.pk:
        raise WrongServerError(
            f"The MDM server “{check.apple_account.server_name}” is already added as "
            f"“{existing.name}”. Renew it from its Edit DEP Account page instead.",
            found=check.apple_account,
            existing=existing,
        )
    try:
        with transaction.atomic():
            account = DEPAccount.objects.select_for_update().get(pk=account.pk)
            if account.server_tokens.exists():
                raise ConcurrentUploadError(
                    "This DEP account already received its token in another upload. "
                    "Open it from the DEP Accounts list."
                )
            _token_store(
                account=account,
                check=check,
                actor=actor,
                file_name=file_name,
                apple_id_change_confirmed=False,
                now=now,
            )
            audit_record(
                action=AuditEvent.Action.ACCOUNT_CREATED,
                message=f"Added DEP account for MDM server “{account.server_name}” "
                f"({account.org_name}); token expires {account.token_expires_at:%-d %b %Y}.",
                actor=actor,
                account=account,
                details={"fingerprint": check.token.consumer_key_fingerprint},
            )
    except IntegrityError as exc:
        raise ConcurrentUploadError(
            "Another upload for this MDM server finished first. Reload the DEP Accounts list."
        ) from exc
    banner_refresh()
    return account


def token_renew(
    *,
    account: DEPAccount,
    token_file: bytes,
    actor: AbstractBaseUser | None,
    file_name: str = "",
    apple_id_change_confirmed: bool = False,
) -> ServerToken:
    """Replace the account's current server token with a newer one for the same MDM server."""
    try:
        check = token_check(account=account, token_file=token_file)
        with transaction.atomic():
            locked = DEPAccount.objects.select_for_update().get(pk=account.pk)
            server_token = _token_renew_locked(
                account=locked,
                check=check,
                actor=actor,
                file_name=file_name,
                apple_id_change_confirmed=apple_id_change_confirmed,
            )
    except TokenUploadError as exc:
        audit_record(
            action=AuditEvent.Action.TOKEN_REJECTED,
            message=f"Token upload rejected: {exc.message}",
            actor=actor,
            account=account,
            outcome=AuditEvent.Outcome.FAILURE,
            details={"reason": exc.code, "file_name": file_name[:255]},
        )
        raise
    account.refresh_from_db()
    banner_refresh()
    return server_token


def _token_renew_locked(
    *,
    account: DEPAccount,
    check: TokenCheck,
    actor: AbstractBaseUser | None,
    file_name: str,
    apple_id_change_confirmed: bool,
) -> ServerToken:
    now = timezone.now()
    found = check.apple_account
    current = account.server_tokens.filter(is_current=True).first()
    if account.server_uuid and found.server_uuid != account.server_uuid:
        raise WrongServerError(
            f"This token is for the MDM server “{found.server_name}” of {found.org_name}, "
            f"not for “{account.server_name}” of {account.org_name}. In Apple Business "
            f"Manager, download the token of “{account.server_name}”, or add this file as "
            "a new DEP account.",
            found=found,
            existing=DEPAccount.objects.filter(server_uuid=found.server_uuid).first(),
        )
    if current is not None:
        if current.consumer_key_fingerprint == check.token.consumer_key_fingerprint and (
            current.access_token_expiry == check.token.access_token_expiry
        ):
            raise OlderTokenError(
                "This is the token already in use. In Apple Business Manager, click Download "
                "Token on this MDM server and upload the new file."
            )
        if check.token.access_token_expiry < current.access_token_expiry:
            raise OlderTokenError(
                f"This token expires on {check.token.access_token_expiry:%-d %b %Y}, before the "
                f"current one ({current.access_token_expiry:%-d %b %Y}): it is an older download. "
                "Upload the token you downloaded last."
            )
        previous_apple_id = current.admin_apple_id
        if previous_apple_id and found.admin_id != previous_apple_id:
            if not apple_id_change_confirmed:
                raise AppleIDChangedError(
                    f"This token was downloaded by {found.admin_id}, but the current one by "
                    f"{previous_apple_id}. Tokens must come from the Apple ID that manages this "
                    "server. If that Apple ID has changed in Apple Business Manager, tick “The "
                    "Apple ID that manages this server in ABM has changed” and save again.",
                    previous=previous_apple_id,
                    found=found.admin_id,
                )
            audit_record(
                action=AuditEvent.Action.APPLE_ID_CHANGED,
                message=f"Confirmed that the Apple ID managing “{account.server_name}” changed "
                f"from {previous_apple_id} to {found.admin_id}.",
                actor=actor,
                account=account,
                details={"previous": previous_apple_id, "new": found.admin_id},
            )
    previous_expiry = account.token_expires_at
    server_token = _token_store(
        account=account,
        check=check,
        actor=actor,
        file_name=file_name,
        apple_id_change_confirmed=apple_id_change_confirmed,
        now=now,
    )
    audit_record(
        action=AuditEvent.Action.TOKEN_RENEWED if current else AuditEvent.Action.TOKEN_UPLOADED,
        message=f"Server token of “{account.server_name}” renewed: expires "
        f"{server_token.access_token_expiry:%-d %b %Y}"
        + (f" (was {previous_expiry:%-d %b %Y})." if previous_expiry else "."),
        actor=actor,
        account=account,
        details={"fingerprint": server_token.consumer_key_fingerprint, "file_name": file_name},
    )
    return server_token


def token_state_for(*, expires_at: datetime | None, now: datetime) -> tuple[str, str]:
    """The state a token's expiry alone gives, with the reason shown to admins."""
    if expires_at is None:
        return State.AWAITING_TOKEN, "Upload a server token from Apple Business Manager."
    if expires_at <= now:
        return State.EXPIRED, f"The server token expired on {expires_at:%-d %b %Y}."
    if expires_at <= now + timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS):
        return State.CRITICAL, f"The server token expires on {expires_at:%-d %b %Y}."
    if expires_at <= now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS):
        return State.WARNING, f"The server token expires on {expires_at:%-d %b %Y}."
    return State.OK, ""


def token_states_refresh(*, now: datetime | None = None) -> int:
    """Recompute every account's expiry state in one UPDATE; Apple's verdicts stay until expiry."""
    now = now or timezone.now()
    critical = now + timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS)
    warning = now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS)
    apple_verdicts = [State.REJECTED, State.TERMS_NOT_ACCEPTED]
    return DEPAccount.objects.filter(token_expires_at__isnull=False).update(
        state=Case(
            When(token_expires_at__lte=now, then=Value(State.EXPIRED)),
            When(state__in=apple_verdicts, then=F("state")),
            When(token_expires_at__lte=critical, then=Value(State.CRITICAL)),
            When(token_expires_at__lte=warning, then=Value(State.WARNING)),
            default=Value(State.OK),
        ),
    )


def banner_refresh(*, now: datetime | None = None) -> Banner:
    """Rebuild the banner from the accounts' states and the licence, most urgent first."""
    now = now or timezone.now()
    from dep_accounts.selectors import banner_items_compute

    items = banner_items_compute(now=now)
    banner, _ = Banner.objects.update_or_create(pk=1, defaults={"items": items, "computed_at": now})
    return banner


def account_state_set(*, account: DEPAccount, state: str, detail: str) -> None:
    """Record Apple's verdict on an account's token: rejected, terms not accepted, or fine."""
    if account.state == state and account.state_detail == detail:
        return
    if state == State.OK:
        state, detail = token_state_for(expires_at=account.token_expires_at, now=timezone.now())
    DEPAccount.objects.filter(pk=account.pk).update(state=state, state_detail=detail[:500])
    account.state, account.state_detail = state, detail[:500]
    audit_record(
        action=AuditEvent.Action.STATE_CHANGED,
        message=f"“{account.name}”: {account.get_state_display()}. {detail}".strip(),
        account=account,
        outcome=AuditEvent.Outcome.SUCCESS
        if account.token_is_usable
        else AuditEvent.Outcome.FAILURE,
    )
    webhooks_emit_account_state(account=account)
    banner_refresh()


def account_update(*, account: DEPAccount, actor: AbstractBaseUser | None, **fields) -> DEPAccount:
    """Change an account's display name, sync options or notification contacts."""
    changed = [name for name, value in fields.items() if getattr(account, name) != value]
    if not changed:
        return account
    for name in changed:
        setattr(account, name, fields[name])
    account.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action=AuditEvent.Action.ACCOUNT_CHANGED,
        message=f"Changed {', '.join(n.replace('_', ' ') for n in changed)} of “{account.name}”.",
        actor=actor,
        account=account,
    )
    return account
