"""Device sync with Apple: one run, under the account's lease, from the saved cursor to its outcome.

One sync per account runs at a time, under a lease that expires if its worker dies. The run
follows Apple's pages (sync_pages.py: each page and its cursor saved together, so a killed worker
resumes where it stopped), assigns the default profile (default_profile.py), then records the
outcome: account state, alert, audit event and webhook. Asking for a sync is sync_requests.py.

Apple's live service departs from its documentation here (docs/apple-answers.md): it may echo a
cursor with more to follow, forever (micromdm/micromdm PR #1016, micromdm/nanodep#73), and leave
assigned devices out of incremental syncs (fleetdm/fleet#49837). A sync stops following a cursor
that makes no progress and fetches every device instead, and a full fetch reconciles each account
every DEP_FULL_FETCH_INTERVAL_DAYS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import ngettext

from dep_accounts.apple import dep_errors
from dep_accounts.encryption import SecretDecryptionError
from dep_accounts.errors import DomainError
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice
from dep_accounts.services.apple_access import (
    dep_client_for_token,
    server_token_credentials,
    sync_blocker,
)
from dep_accounts.services.audit import audit_record
from dep_accounts.services.default_profile import default_profile_assign
from dep_accounts.services.expiry import account_state_set, banner_refresh
from dep_accounts.services.licence import LicenceLimitError
from dep_accounts.services.sync_pages import (
    cursor_discard,
    fetch_restart,
    full_fetch_due,
    lease_until,
    pages_save,
)
from dep_accounts.services.webhooks import webhooks_emit_sync_failed
from mdmportal.celery import AfterCommitTask

logger = logging.getLogger(__name__)

State = DEPAccount.State
Result = DEPAccount.SyncResult
Phase = DEPAccount.SyncPhase

UNAVAILABLE_BACKOFF = [timedelta(minutes=m) for m in (1, 5, 15, 60)]


class SyncUnavailableError(DomainError):
    """The account cannot be synced now; `message` says why and what to do."""


class SyncBusyError(SyncUnavailableError):
    """Another sync holds the account; `retry_after` is when its lease lapses, in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SyncOutcome:
    result: str
    devices_seen: int
    message: str


def _queued_clear(account: DEPAccount) -> None:
    """The queued sync has run, if only to find it cannot sync: the next may be queued."""
    DEPAccount.objects.filter(pk=account.pk, sync_queued_until__isnull=False).update(
        sync_queued_until=None
    )


def _lease_take(account: DEPAccount, now: datetime) -> bool:
    taken = DEPAccount.objects.filter(
        Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now), pk=account.pk
    ).update(
        sync_lock_until=lease_until(),
        sync_queued_until=None,
        last_sync_started_at=now,
        last_sync_result=Result.RUNNING,
        last_sync_message="",
        sync_devices_seen=0,
    )
    return taken == 1


def devices_sync(
    *, account: DEPAccount, sleep: Callable[[float], object] = time.sleep
) -> SyncOutcome:
    """Bring the account's devices in line with Apple's, under the account's sync lease.

    `sleep` spends the short waits Apple asks for; tests pass one that moves applesim's clock.
    """
    now = timezone.now()
    blocker = sync_blocker(account=account, now=now)
    if blocker:
        _queued_clear(account)
        return SyncOutcome(result=Result.FAILED, devices_seen=0, message=blocker)
    current = account.server_tokens.filter(is_current=True).first()
    assert current is not None, "sync_blocker lets through only an account with a token"
    try:
        client = dep_client_for_token(server_token_credentials(current))
    except SecretDecryptionError as exc:
        logger.error("Server token of DEP account %s cannot be decrypted", account.pk)
        _queued_clear(account)
        return SyncOutcome(result=Result.FAILED, devices_seen=0, message=str(exc))
    if not _lease_take(account, now):
        lease_until = DEPAccount.objects.values_list("sync_lock_until", flat=True).get(
            pk=account.pk
        )
        raise SyncBusyError(
            "A sync of this DEP account is already running.",
            retry_after=max((lease_until - now).total_seconds(), 0) + 1 if lease_until else 1,
        )
    account.refresh_from_db()
    new_serials: list[str] = []
    retry_at, alert = None, ""
    try:
        if account.sync_phase == Phase.SYNC and not account.sync_cursor:
            fetch_restart(account, now)
        elif account.sync_phase == Phase.SYNC and full_fetch_due(account, now):
            cursor_discard(
                account,
                now,
                reason=f"the periodic full fetch, every {settings.DEP_FULL_FETCH_INTERVAL_DAYS} "
                "day(s), reconciles the devices with Apple's list",
            )
        new_serials = pages_save(client, account, now)
        if account.assign_default_profile and account.default_profile_id:
            default_profile_assign(client, account, sleep=sleep)
        outcome = SyncOutcome(
            result=Result.OK,
            devices_seen=account.sync_devices_seen,
            message=ngettext(
                "%(seen)s device record from Apple, %(new)s new.",
                "%(seen)s device records from Apple, %(new)s new.",
                account.sync_devices_seen,
            )
            % {"seen": f"{account.sync_devices_seen:,}", "new": f"{len(new_serials):,}"},
        )
        if account.state in (State.REJECTED, State.TERMS_NOT_ACCEPTED):
            account_state_set(account=account, state=State.OK, detail="")
    except LicenceLimitError as exc:
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, exc.message)
        banner_refresh(now=now)
    except dep_errors.TokenRejectedError as exc:
        account_state_set(account=account, state=State.REJECTED, detail=exc.message)
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, exc.message)
    except dep_errors.TermsNotSignedError as exc:
        account_state_set(account=account, state=State.TERMS_NOT_ACCEPTED, detail=exc.message)
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, exc.message)
    except dep_errors.ThrottledError as exc:
        retry_at = now + timedelta(seconds=max(exc.retry_after, 1))
        outcome = SyncOutcome(
            Result.WAITING,
            account.sync_devices_seen,
            f"Apple asked to wait: the sync resumes after {retry_at:%H:%M:%S} UTC.",
        )
    except dep_errors.DEPError as exc:
        retry_at = now + _backoff(account)
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, exc.message)
    except Exception as exc:
        # Any failure must release the lease and be told. What failed is logged; the admin sees
        # its kind only, never values that may be private.
        logger.exception("Sync of DEP account %s stopped on an unexpected error", account.pk)
        alert = (
            f"The last sync stopped on an unexpected error ({type(exc).__name__}). It is tried "
            "again later; if this stays, send the portal's log to your vendor."
        )
        retry_at = now + _backoff(account)
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, alert)
    _sync_finish(account=account, outcome=outcome, retry_at=retry_at, alert=alert)
    return outcome


def _backoff(account: DEPAccount) -> timedelta:
    return UNAVAILABLE_BACKOFF[min(account.sync_failures, len(UNAVAILABLE_BACKOFF) - 1)]


def _sync_finish(
    *, account: DEPAccount, outcome: SyncOutcome, retry_at: datetime | None, alert: str = ""
) -> None:
    now = timezone.now()
    # A Result.WAITING sync keeps the alert: it has not succeeded yet.
    if outcome.result != Result.WAITING and account.sync_alert != alert:
        account.sync_alert = alert[:500]
        DEPAccount.objects.filter(pk=account.pk).update(sync_alert=account.sync_alert)
        banner_refresh(now=now)
    device_count = DEPDevice.objects.filter(account=account, removed_at__isnull=True).count()
    DEPAccount.objects.filter(pk=account.pk).update(
        sync_lock_until=None,
        last_sync_at=now,
        last_sync_result=outcome.result,
        last_sync_message=outcome.message[:500],
        sync_retry_at=retry_at,
        sync_failures=0 if outcome.result == Result.OK else F("sync_failures") + 1,
        device_count=device_count,
    )
    audit_record(
        action=AuditEvent.Action.SYNC,
        message=f"Sync of “{account.name}”: {outcome.message}",
        account=account,
        outcome=AuditEvent.Outcome.SUCCESS
        if outcome.result == Result.OK
        else AuditEvent.Outcome.FAILURE,
        details={"devices_seen": outcome.devices_seen, "result": outcome.result}
        | ({"error": alert} if alert else {}),
    )
    if outcome.result == Result.FAILED:
        webhooks_emit_sync_failed(account=account, message=outcome.message, failed_at=now)


@shared_task(base=AfterCommitTask, bind=True, max_retries=3)
def account_sync(self, account_id: int) -> None:
    """Sync one account's devices; queued by "Sync now" and by the beat's dispatcher."""
    account = DEPAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    try:
        devices_sync(account=account)
    except SyncBusyError as exc:
        # The holder may be a worker that died mid-sync: try again once its lease lapses, and
        # the sync resumes from the cursor it saved.
        logger.info("Sync of DEP account %s busy; retrying in %.0f s", account_id, exc.retry_after)
        raise self.retry(countdown=exc.retry_after) from exc
