"""Asking Apple about a token on purpose: guarded renewal, and the terms check on demand.

Guarded renewal: an admin says they are about to click Download Token in Apple Business Manager,
which resets the current token at once. Until the new file is uploaded (`_token_store` then
clears the guard), the old token is tried with Apple every few minutes; when Apple rejects it,
the account turns rejected, the banner says how long ago, and one email asks for the upload.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import dep_errors
from dep_accounts.errors import DomainError
from dep_accounts.links import portal_url
from dep_accounts.models import AuditEvent, DEPAccount, OutboundEmail, ServerToken
from dep_accounts.services.apple_access import dep_client_for_token, server_token_credentials
from dep_accounts.services.audit import audit_record
from dep_accounts.services.credentials import old_token_reset_text
from dep_accounts.services.expiry import account_state_set, banner_refresh
from dep_accounts.services.notifications import account_notifications_isolated
from dep_accounts.services.outbox import emails_queue
from dep_accounts.services.reminders import admin_emails
from dep_accounts.users import User

logger = logging.getLogger(__name__)

State = DEPAccount.State

GUARD_CHECK_MINUTES = 5
GUARD_DURATION = timedelta(hours=24)
_GUARD_CLEARED = {
    "renewal_started_at": None,
    "renewal_started_by": None,
    "renewal_checked_at": None,
    "old_token_rejected_at": None,
}


class RenewalCheckError(DomainError):
    """A renewal or terms check that cannot be done now; `message` says what to do instead."""


def renewal_start(
    *, account: DEPAccount, actor: User | None, now: datetime | None = None
) -> DEPAccount:
    """Record that an admin is about to download a new token, and start watching the old one."""
    if not account.token_is_usable:
        raise RenewalCheckError(_why_no_guard(account))
    now = now or timezone.now()
    fields = {**_GUARD_CLEARED, "renewal_started_at": now, "renewal_started_by": actor}
    DEPAccount.objects.filter(pk=account.pk).update(**fields)
    for name, value in fields.items():
        setattr(account, name, value)
    audit_record(
        action=AuditEvent.Action.ACCOUNT_CHANGED,
        message=f"Renewal of “{account.name}” started: the old token is checked with Apple "
        f"every {GUARD_CHECK_MINUTES} minutes until the new one is uploaded.",
        actor=actor,
        account=account,
        details={"guarded_renewal": "started"},
    )
    return account


def _why_no_guard(account: DEPAccount) -> str:
    if account.state == State.AWAITING_TOKEN:
        return "This DEP account has no server token yet: finish adding it first."
    if account.state == State.TERMS_NOT_ACCEPTED:
        return (
            "Apple reports the terms and conditions as not accepted, so it cannot tell whether "
            "the old token is reset. Accept them in Apple Business Manager and check now first."
        )
    return (
        f"The current token is already unusable ({account.get_state_display().lower()}): "
        "download a new token in Apple Business Manager and upload it on the Edit page."
    )


def guarded_renewals_check(*, now: datetime | None = None) -> int:
    """Try the old token of every guarded account with Apple; return how many were found reset."""
    now = now or timezone.now()
    found_reset = 0
    waiting_for_upload = False
    for account in DEPAccount.objects.filter(renewal_started_at__isnull=False):
        # One account's failure is logged and audited; the other accounts are still checked.
        with account_notifications_isolated(account=account, what="guarded renewal check"):
            started_at = account.renewal_started_at
            assert started_at is not None, "the query keeps guarded accounts only"
            if started_at <= now - GUARD_DURATION:
                _guard_stop(account)
            elif account.old_token_rejected_at is not None:
                waiting_for_upload = True
            elif _old_token_is_rejected(account, now=now):
                found_reset += 1
    if waiting_for_upload:
        # Keeps "reset N minutes ago" in the banner current between state changes.
        banner_refresh(now=now)
    return found_reset


@sensitive_variables()
def _old_token_is_rejected(account: DEPAccount, *, now: datetime) -> bool:
    current = ServerToken.objects.filter(account=account, is_current=True).first()
    if current is None:
        return False
    try:
        dep_client_for_token(server_token_credentials(current)).account()
    except dep_errors.TokenRejectedError as exc:
        _old_token_rejected(account, now=now, detail=exc.message)
        return True
    except dep_errors.DEPError as exc:
        # Unreachable, throttled or terms: not a sign of a reset; the next run asks again.
        logger.info("Guarded renewal of DEP account %s: %s", account.pk, exc.message)
    DEPAccount.objects.filter(pk=account.pk).update(renewal_checked_at=now)
    return False


def _old_token_rejected(account: DEPAccount, *, now: datetime, detail: str) -> None:
    account_state_set(account=account, state=State.REJECTED, detail=detail)
    recipients = sorted(set(account.notification_email_list) | set(admin_emails()))
    with transaction.atomic():
        # Claimed by this update: a second worker finds it set and queues nothing; the outbox
        # sends the email after commit and retries it on its own.
        claimed = DEPAccount.objects.filter(
            pk=account.pk, old_token_rejected_at__isnull=True, renewal_started_at__isnull=False
        ).update(old_token_rejected_at=now, renewal_checked_at=now)
        if not claimed:
            return
        account.old_token_rejected_at = now
        subject, body = _reset_reminder_text(account, now=now)
        emails_queue(
            kind=OutboundEmail.Kind.TOKEN_RESET,
            notification_key=f"token_reset:{account.pk}:{now.isoformat()}",
            recipients=recipients,
            subject=subject,
            body=body,
            account=account,
        )
    audit_record(
        action=AuditEvent.Action.REMINDER_SENT,
        message=f"Apple rejects the old token of “{account.name}”: upload reminder queued for "
        + ngettext("%(count)d recipient.", "%(count)d recipients.", len(recipients))
        % {"count": len(recipients)},
        account=account,
        details={"guarded_renewal": "old_token_rejected"},
    )
    banner_refresh(now=now)


def _reset_reminder_text(account: DEPAccount, *, now: datetime) -> tuple[str, str]:
    edit_url = portal_url(reverse("dep_accounts:edit", args=[account.pk]))
    body = (
        f"{old_token_reset_text(account, now=now)}\n\n"
        f"Apple no longer accepts the old server token of “{account.name}” (MDM server "
        f"“{account.server_name}”, {account.org_name}): the new download in Apple Business "
        "Manager replaced it. Until the new token is uploaded, devices of this server do not "
        "sync and new devices do not enroll automatically.\n\n"
        f"Open {edit_url} , choose the downloaded .p7m file under Upload Token and click Save.\n"
    )
    return f"Upload the new server token of {account.name} now", body


def _guard_stop(account: DEPAccount) -> None:
    DEPAccount.objects.filter(pk=account.pk).update(**_GUARD_CLEARED)
    audit_record(
        action=AuditEvent.Action.ACCOUNT_CHANGED,
        outcome=AuditEvent.Outcome.FAILURE,
        message=f"Stopped watching the old token of “{account.name}”: no new token was uploaded "
        f"within {GUARD_DURATION.total_seconds() / 3600:.0f} hours of starting the renewal.",
        account=account,
        details={"guarded_renewal": "stopped"},
    )
    if account.old_token_rejected_at is not None:
        banner_refresh()


def terms_acceptance_check(*, account: DEPAccount, actor: User | None) -> bool:
    """Ask Apple once whether the terms are accepted now; clear the account's state if so."""
    current = ServerToken.objects.filter(account=account, is_current=True).first()
    if account.state != State.TERMS_NOT_ACCEPTED or current is None:
        raise RenewalCheckError(
            f"Apple does not report the terms as not accepted for “{account.name}”: "
            "there is nothing to check."
        )
    try:
        dep_client_for_token(server_token_credentials(current)).account()
    except dep_errors.TermsNotSignedError:
        _terms_check_record(account, actor, accepted=False, message="still not accepted")
        return False
    except dep_errors.TokenRejectedError as exc:
        account_state_set(account=account, state=State.REJECTED, detail=exc.message)
        _terms_check_record(account, actor, accepted=False, message="the token is rejected")
        raise RenewalCheckError(
            f"Apple now rejects the server token of “{account.name}”: download a new token in "
            "Apple Business Manager and upload it on the Edit page."
        ) from exc
    except dep_errors.DEPError as exc:
        _terms_check_record(account, actor, accepted=False, message="Apple did not answer")
        raise RenewalCheckError(
            f"Apple could not be asked ({exc.message}) Try again in a few minutes."
        ) from exc
    account_state_set(account=account, state=State.OK, detail="")
    _terms_check_record(account, actor, accepted=True, message="accepted")
    return True


def _terms_check_record(
    account: DEPAccount, actor: User | None, *, accepted: bool, message: str
) -> None:
    audit_record(
        action=AuditEvent.Action.STATE_CHANGED,
        outcome=AuditEvent.Outcome.SUCCESS if accepted else AuditEvent.Outcome.FAILURE,
        message=f"Checked the terms and conditions of “{account.name}” with Apple: {message}.",
        actor=actor,
        account=account,
        details={"terms_check": accepted},
    )
