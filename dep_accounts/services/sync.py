"""Device sync with Apple: a full fetch, then incremental syncs from the saved cursor.

Each page of devices and the cursor that follows it are saved in one transaction, so a worker
killed mid-sync resumes where it stopped: nothing is lost and nothing is repeated. One sync per
account runs at a time, under a lease that expires if its worker dies.

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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import ngettext
from kombu.exceptions import OperationalError as BrokerUnreachableError

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import schema as apple_schema
from dep_accounts.encryption import SecretDecryptionError
from dep_accounts.errors import DomainError
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice
from dep_accounts.services.apple_access import (
    dep_client_for_token,
    licence_blocker,
    server_token_credentials,
    sync_blocker,
)
from dep_accounts.services.audit import audit_record
from dep_accounts.services.device_upsert import devices_page_upsert
from dep_accounts.services.expiry import account_state_set, banner_refresh
from dep_accounts.services.licence import (
    LicenceLimitError,
    licence_devices_admit,
    licence_limit_reached,
)
from dep_accounts.services.webhooks import webhooks_emit_sync_failed
from dep_accounts.users import User
from mdmportal.celery import AfterCommitTask

logger = logging.getLogger(__name__)

State = DEPAccount.State
Result = DEPAccount.SyncResult
Phase = DEPAccount.SyncPhase

PAGE_LIMIT = 1000
ASSIGN_BATCH = 1000
# Accounts marked queued per UPDATE: SQLite takes a bounded number of parameters.
DISPATCH_BATCH = 1000
# Apple may ask to wait; a wait this short is spent in the task, a longer one is rescheduled.
MAX_INLINE_WAIT_SECONDS = 10.0
UNAVAILABLE_BACKOFF = [timedelta(minutes=m) for m in (1, 5, 15, 60)]
# Pages in a row that bring no new cursor yet promise more: then the sync stops following it.
STALLED_PAGES_LIMIT = 3


class SyncUnavailableError(DomainError):
    """The account cannot be synced now; `message` says why and what to do."""


class SyncBusyError(SyncUnavailableError):
    """Another sync holds the account; `retry_after` is when its lease lapses, in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CursorStuckError(apple_client.DEPError):
    """Apple kept answering with a cursor it had already sent, and more to follow."""

    default_message = (
        "Apple kept answering with the same device cursor and more to follow, even in a full "
        "fetch. The sync stopped and is tried again later; nothing to do unless it persists."
    )


@dataclass(frozen=True)
class SyncOutcome:
    result: str
    devices_seen: int
    message: str


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


def _lease_until() -> datetime:
    """A sync holds its account for this long past its last page; a dead worker's lease lapses."""
    return timezone.now() + timedelta(seconds=settings.DEP_SYNC_LEASE_SECONDS)


def _queued_clear(account: DEPAccount) -> None:
    """The queued sync has run, if only to find it cannot sync: the next may be queued."""
    DEPAccount.objects.filter(pk=account.pk, sync_queued_until__isnull=False).update(
        sync_queued_until=None
    )


def _lease_take(account: DEPAccount, now: datetime) -> bool:
    taken = DEPAccount.objects.filter(
        Q(sync_lock_until__isnull=True) | Q(sync_lock_until__lt=now), pk=account.pk
    ).update(
        sync_lock_until=_lease_until(),
        sync_queued_until=None,
        last_sync_started_at=now,
        last_sync_result=Result.RUNNING,
        last_sync_message="",
        sync_devices_seen=0,
    )
    return taken == 1


def _page_save(
    *, account: DEPAccount, page: apple_schema.DevicePage, phase: str, now: datetime
) -> list[str]:
    """Save one page of devices with the cursor after it; return serials new to the account."""
    with transaction.atomic():
        new, removed = devices_page_upsert(account=account, devices=page.devices, now=now)
        account.sync_cursor = page.cursor or account.sync_cursor
        account.sync_cursor_at = now
        account.sync_phase = phase
        account.sync_devices_seen += len(page.devices)
        account.sync_lock_until = _lease_until()
        # Counted as it goes, so the devices page is right while a long sync runs.
        DEPAccount.objects.filter(pk=account.pk).update(
            sync_cursor=account.sync_cursor,
            sync_cursor_at=now,
            sync_phase=phase,
            sync_devices_seen=account.sync_devices_seen,
            sync_lock_until=account.sync_lock_until,
            device_count=F("device_count") + len(new) - removed,
        )
    return new


def _fetch_restart(account: DEPAccount, now: datetime) -> None:
    account.sync_phase = Phase.FETCH
    account.sync_cursor = ""
    account.sync_fetch_started_at = now
    DEPAccount.objects.filter(pk=account.pk).update(
        sync_phase=Phase.FETCH, sync_cursor="", sync_fetch_started_at=now
    )


def _cursor_discard(account: DEPAccount, now: datetime, *, reason: str) -> None:
    """Start a full fetch instead of following the cursor, and record why."""
    _fetch_restart(account, now)
    account.sync_cursor_reset_reason, account.sync_cursor_reset_at = reason[:500], now
    DEPAccount.objects.filter(pk=account.pk).update(
        sync_cursor_reset_reason=reason[:500], sync_cursor_reset_at=now
    )
    audit_record(
        action=AuditEvent.Action.SYNC,
        message=f"Device cursor of “{account.name}” discarded for a full fetch: {reason}.",
        account=account,
        details={"cursor_reset": reason},
    )


def _full_fetch_due(account: DEPAccount, now: datetime) -> bool:
    started = account.sync_fetch_started_at
    interval = timedelta(days=settings.DEP_FULL_FETCH_INTERVAL_DAYS)
    return started is None or started + interval <= now


def _fetch_finish(account: DEPAccount, now: datetime) -> None:
    """After a complete fetch, devices Apple no longer lists are gone from the account."""
    with transaction.atomic():
        DEPDevice.objects.filter(
            account=account,
            removed_at__isnull=True,
            updated_at__lt=account.sync_fetch_started_at,
        ).update(removed_at=now)
        account.sync_phase = Phase.SYNC
        DEPAccount.objects.filter(pk=account.pk).update(sync_phase=Phase.SYNC)


def _pages(client: apple_client.DEPClient, account: DEPAccount, now: datetime):
    """Yield (page, phase) from Apple until there is nothing more to follow.

    Raises CursorStuckError after STALLED_PAGES_LIMIT pages in a row that promise more but bring
    no cursor this run has not already sent.
    """
    # Whether the page before, in this run, said that more devices follow the saved cursor.
    more_promised = False
    sent = {account.sync_cursor}
    stalled = 0
    while True:
        if stalled >= STALLED_PAGES_LIMIT:
            raise CursorStuckError(
                f"Apple answered {stalled} pages in a row with a device cursor it had already "
                f"sent and more to follow ({account.get_sync_phase_display().lower()})"
            )
        if account.sync_phase == Phase.FETCH:
            if not account.sync_cursor and account.sync_fetch_started_at is None:
                _fetch_restart(account, now)
            try:
                page = client.devices_fetch(cursor=account.sync_cursor or None, limit=PAGE_LIMIT)
            except apple_client.CursorExhaustedError:
                # Finishing against the page before would drop the devices not yet fetched.
                if more_promised:
                    _fetch_restart(account, now)
                else:
                    _fetch_finish(account, now)
                more_promised = False
                continue
            except (apple_client.CursorExpiredError, apple_client.CursorInvalidError):
                if not account.sync_cursor:
                    raise
                logger.info("Fetch cursor of DEP account %s refused: full fetch again", account.pk)
                more_promised = False
                _fetch_restart(account, now)
                continue
            more_promised = page.more_to_follow
            stalled = stalled + 1 if page.more_to_follow and page.cursor in sent else 0
            sent.add(page.cursor)
            yield page, Phase.FETCH
            if not page.more_to_follow:
                _fetch_finish(account, now)
                return
        else:
            try:
                page = client.devices_sync(cursor=account.sync_cursor, limit=PAGE_LIMIT)
            except (
                apple_client.CursorExpiredError,
                apple_client.CursorInvalidError,
                apple_client.CursorExhaustedError,
            ):
                logger.info("Cursor of DEP account %s no longer valid: full fetch", account.pk)
                _fetch_restart(account, now)
                continue
            stalled = stalled + 1 if page.more_to_follow and page.cursor in sent else 0
            sent.add(page.cursor)
            yield page, Phase.SYNC
            if not page.more_to_follow:
                return


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
            _fetch_restart(account, now)
        elif account.sync_phase == Phase.SYNC and _full_fetch_due(account, now):
            _cursor_discard(
                account,
                now,
                reason=f"the periodic full fetch, every {settings.DEP_FULL_FETCH_INTERVAL_DAYS} "
                "day(s), reconciles the devices with Apple's list",
            )
        new_serials = _pages_save(client, account, now)
        if account.assign_default_profile and account.default_profile_id:
            _default_profile_assign(client, account, sleep=sleep)
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
    except apple_client.TokenRejectedError as exc:
        account_state_set(account=account, state=State.REJECTED, detail=exc.message)
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, exc.message)
    except apple_client.TermsNotSignedError as exc:
        account_state_set(account=account, state=State.TERMS_NOT_ACCEPTED, detail=exc.message)
        outcome = SyncOutcome(Result.FAILED, account.sync_devices_seen, exc.message)
    except apple_client.ThrottledError as exc:
        retry_at = now + timedelta(seconds=max(exc.retry_after, 1))
        outcome = SyncOutcome(
            Result.WAITING,
            account.sync_devices_seen,
            f"Apple asked to wait: the sync resumes after {retry_at:%H:%M:%S} UTC.",
        )
    except apple_client.DEPError as exc:
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


def _pages_save(client: apple_client.DEPClient, account: DEPAccount, now: datetime) -> list[str]:
    """Save Apple's pages; a cursor that stops making progress is discarded once for a full
    fetch, and a full fetch that sticks too raises CursorStuckError."""
    new_serials: list[str] = []
    for attempt in range(2):
        try:
            for page, phase in _pages(client, account, now):
                admitted, held_back = licence_devices_admit(account=account, devices=page.devices)
                if held_back:
                    # The cursor stays before this page, so a sync after the upgrade takes the
                    # devices held back; those admitted from it are stored now.
                    page = replace(page, devices=tuple(admitted), cursor="")
                new_serials += _page_save(account=account, page=page, phase=phase, now=now)
                if held_back:
                    raise licence_limit_reached()
        except CursorStuckError as stuck:
            if attempt:
                raise CursorStuckError(status=stuck.status) from stuck
            _cursor_discard(account, now, reason=stuck.message)
        else:
            break
    return new_serials


def _default_profile_assign(
    client: apple_client.DEPClient, account: DEPAccount, *, sleep: Callable[[float], object]
) -> None:
    """Assign the default profile to every device still waiting for it, in Apple's batches."""
    profile = account.default_profile
    assert profile is not None, "called only for an account with a default profile"
    pending = DEPDevice.objects.filter(
        account=account, default_profile_pending=True, removed_at__isnull=True
    )
    serials = list(pending.order_by("serial_number").values_list("serial_number", flat=True))
    for start in range(0, len(serials), ASSIGN_BATCH):
        batch = serials[start : start + ASSIGN_BATCH]
        for _attempt in range(3):
            assignment = client.profile_assign(profile_uuid=profile.profile_uuid, serials=batch)
            results = assignment.devices
            assigned = [s for s, r in results.items() if r == "SUCCESS"]
            DEPDevice.objects.filter(account=account, serial_number__in=assigned).update(
                profile_uuid=profile.profile_uuid,
                profile_status="assigned",
                default_profile_pending=False,
            )
            # NOT_ACCESSIBLE and FAILED are Apple's final word on a device: stop asking.
            settled = [s for s, r in results.items() if r not in ("SUCCESS", "THROTTLED")]
            DEPDevice.objects.filter(account=account, serial_number__in=settled).update(
                default_profile_pending=False
            )
            batch = [s for s, r in results.items() if r == "THROTTLED"]
            wait = assignment.retry_after_seconds or 0
            if not batch or wait > MAX_INLINE_WAIT_SECONDS:
                break
            sleep(wait)
        if batch:
            raise apple_client.ThrottledError(
                ngettext(
                    "Apple throttled the assignment of %(count)d device.",
                    "Apple throttled the assignment of %(count)d devices.",
                    len(batch),
                )
                % {"count": len(batch)},
                retry_after=float(assignment.retry_after_seconds or 60),
            )


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
