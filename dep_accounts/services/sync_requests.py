"""Asking for a sync: "Sync now", "Full re-sync", and the accounts due for an automatic one."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachableError

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.services.apple_access import licence_blocker, sync_blocker
from dep_accounts.services.audit import audit_record
from dep_accounts.services.sync import SyncUnavailableError, account_sync
from dep_accounts.users import User

logger = logging.getLogger(__name__)

State = DEPAccount.State
Phase = DEPAccount.SyncPhase

# Accounts marked queued per UPDATE: SQLite takes a bounded number of parameters.
DISPATCH_BATCH = 1000


def account_sync_request(*, account: DEPAccount, actor: User | None) -> None:
    """'Sync now': check the account may sync, then queue the sync once the request commits."""
    blocker = sync_blocker(account=account)
    if blocker:
        raise SyncUnavailableError(blocker)
    audit_record(
        action=AuditEvent.Action.SYNC,
        message=f"Sync of “{account.name}” requested.",
        actor=actor,
        account=account,
    )
    transaction.on_commit(lambda: _sync_queue(account=account, actor=actor))


def account_full_resync_request(*, account: DEPAccount, actor: User | None) -> None:
    """'Full re-sync': discard the device cursor, so the next sync fetches every device from
    Apple and removes those Apple no longer lists, then queue that sync."""
    blocker = sync_blocker(account=account)
    if blocker:
        raise SyncUnavailableError(blocker)
    now = timezone.now()
    who = actor.get_username() if actor is not None else "the portal"
    reason = f"full re-sync requested by {who}"
    discarded = DEPAccount.objects.filter(
        Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now), pk=account.pk
    ).update(
        sync_phase=Phase.FETCH,
        sync_cursor="",
        sync_fetch_started_at=now,
        sync_cursor_reset_reason=reason,
        sync_cursor_reset_at=now,
    )
    if not discarded:
        raise SyncUnavailableError(
            "A sync of this DEP account is running: ask for a full re-sync once it has finished."
        )
    audit_record(
        action=AuditEvent.Action.SYNC,
        message=f"Full re-sync of “{account.name}” requested: the device cursor is discarded and "
        "every device is fetched from Apple again.",
        actor=actor,
        account=account,
        details={"cursor_reset": reason},
    )
    transaction.on_commit(lambda: _sync_queue(account=account, actor=actor))


def _queued_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.DEP_SYNC_QUEUED_SECONDS)


def _sync_queue(*, account: DEPAccount, actor: User | None) -> None:
    # An admin's request always queues; the mark keeps the dispatcher from adding another.
    DEPAccount.objects.filter(pk=account.pk).update(sync_queued_until=_queued_until(timezone.now()))
    try:
        account_sync.delay(account.pk)
    except BrokerUnreachableError as exc:
        logger.warning("Sync of DEP account %s not queued: %s", account.pk, exc)
        # Due now: the dispatcher queues it once the broker answers again.
        DEPAccount.objects.filter(pk=account.pk).update(sync_queued_until=None)
        DEPAccount.objects.filter(pk=account.pk, sync_retry_at__isnull=True).update(
            sync_retry_at=timezone.now()
        )
        audit_record(
            action=AuditEvent.Action.SYNC,
            message=f"Sync of “{account.name}” not started: the background worker queue is "
            f"unreachable ({exc}).",
            actor=actor,
            account=account,
            outcome=AuditEvent.Outcome.FAILURE,
        )
        raise SyncUnavailableError(
            "The background worker queue is unreachable, so the sync could not start now. It "
            "runs by itself as soon as the queue is back: nothing else to do."
        ) from exc


def accounts_due_for_sync(*, now: datetime | None = None, lock: bool = False) -> list[int]:
    """Accounts whose automatic sync interval has passed and that may call Apple, with no sync
    running or queued for them. `lock` (inside a transaction) locks them against a concurrent
    dispatcher, and skips those it holds."""
    now = now or timezone.now()
    if licence_blocker(now=now):
        return []
    due = []
    candidates = DEPAccount.objects.filter(
        Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now),
        Q(sync_queued_until__isnull=True) | Q(sync_queued_until__lt=now),
        state__in=[State.OK, State.WARNING, State.CRITICAL, State.TERMS_NOT_ACCEPTED],
    )
    if lock:
        candidates = candidates.select_for_update(skip_locked=True)
    rows = candidates.values_list(
        "pk", "auto_sync", "last_sync_at", "sync_interval_minutes", "sync_retry_at"
    )
    for pk, auto_sync, last, interval, retry_at in rows:
        if retry_at is not None:
            if retry_at <= now:
                due.append(pk)
        elif auto_sync and (last is None or last + timedelta(minutes=interval) <= now):
            due.append(pk)
    return due


def syncs_dispatch(*, now: datetime | None = None) -> list[int]:
    """Queue one sync for each due account and mark it queued; return the accounts queued.

    Every worker's start and every minute's beat dispatch, on as many hosts as run workers: the
    mark, taken under a lock on PostgreSQL (SQLite's write lock on the embedded one), makes
    overlapping dispatchers queue each account once, until its sync has run or the mark lapses.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = accounts_due_for_sync(now=now, lock=True)
        _queued_marks_set(due, _queued_until(now))
    for index, account_id in enumerate(due):
        try:
            account_sync.delay(account_id)
        except BrokerUnreachableError:
            # Not queued: the next dispatch takes them once the broker answers again.
            _queued_marks_set(due[index:], None)
            raise
    return due


def _queued_marks_set(account_ids: list[int], until: datetime | None) -> None:
    for start in range(0, len(account_ids), DISPATCH_BATCH):
        DEPAccount.objects.filter(pk__in=account_ids[start : start + DISPATCH_BATCH]).update(
            sync_queued_until=until
        )
