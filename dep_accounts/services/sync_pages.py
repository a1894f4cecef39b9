"""The device cursor and the pages Apple sends after it: a full fetch, then incremental syncs.

Each page of devices and the cursor that follows it are saved in one transaction, so a worker
killed mid-sync resumes where it stopped. Apple's live service may echo a cursor with more to
follow, forever (micromdm/micromdm PR #1016, micromdm/nanodep#73): a cursor that makes no progress
is discarded once for a full fetch, and a full fetch that sticks too stops the sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import dep_errors
from dep_accounts.apple import schema as apple_schema
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice
from dep_accounts.selectors import licence_current, licence_devices_stored
from dep_accounts.services.audit import audit_record
from dep_accounts.services.device_upsert import devices_page_upsert
from dep_accounts.services.licence import licence_devices_admit, licence_limit_reached

logger = logging.getLogger(__name__)

Phase = DEPAccount.SyncPhase

PAGE_LIMIT = 1000
# Pages in a row that bring no new cursor yet promise more: then the sync stops following it.
STALLED_PAGES_LIMIT = 3


class CursorStuckError(dep_errors.DEPError):
    """Apple kept answering with a cursor it had already sent, and more to follow."""

    default_message = (
        "Apple kept answering with the same device cursor and more to follow, even in a full "
        "fetch. The sync stopped and is tried again later; nothing to do unless it persists."
    )


def lease_until() -> datetime:
    """A sync holds its account for this long past its last page; a dead worker's lease lapses."""
    return timezone.now() + timedelta(seconds=settings.DEP_SYNC_LEASE_SECONDS)


def page_save(
    *, account: DEPAccount, page: apple_schema.DevicePage, phase: str, now: datetime
) -> list[str]:
    """Save one page of devices with the cursor after it; return serials new to the account."""
    with transaction.atomic():
        new, removed = devices_page_upsert(account=account, devices=page.devices, now=now)
        account.sync_cursor = page.cursor or account.sync_cursor
        account.sync_cursor_at = now
        account.sync_phase = phase
        account.sync_devices_seen += len(page.devices)
        account.sync_lock_until = lease_until()
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


def fetch_restart(account: DEPAccount, now: datetime) -> None:
    account.sync_phase = Phase.FETCH
    account.sync_cursor = ""
    account.sync_fetch_started_at = now
    DEPAccount.objects.filter(pk=account.pk).update(
        sync_phase=Phase.FETCH, sync_cursor="", sync_fetch_started_at=now
    )


def cursor_discard(account: DEPAccount, now: datetime, *, reason: str) -> None:
    """Start a full fetch instead of following the cursor, and record why."""
    fetch_restart(account, now)
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


def full_fetch_due(account: DEPAccount, now: datetime) -> bool:
    started = account.sync_fetch_started_at
    interval = timedelta(days=settings.DEP_FULL_FETCH_INTERVAL_DAYS)
    return started is None or started + interval <= now


def fetch_finish(account: DEPAccount, now: datetime) -> None:
    """After a complete fetch, devices Apple no longer lists are gone from the account."""
    with transaction.atomic():
        DEPDevice.objects.filter(
            account=account,
            removed_at__isnull=True,
            updated_at__lt=account.sync_fetch_started_at,
        ).update(removed_at=now)
        account.sync_phase = Phase.SYNC
        DEPAccount.objects.filter(pk=account.pk).update(sync_phase=Phase.SYNC)


def _pages(
    client: apple_client.DEPClient, account: DEPAccount, now: datetime
) -> Iterator[tuple[apple_schema.DevicePage, str]]:
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
                fetch_restart(account, now)
            try:
                page = client.devices_fetch(cursor=account.sync_cursor or None, limit=PAGE_LIMIT)
            except dep_errors.CursorExhaustedError:
                # Finishing against the page before would drop the devices not yet fetched.
                if more_promised:
                    fetch_restart(account, now)
                else:
                    fetch_finish(account, now)
                more_promised = False
                continue
            except (dep_errors.CursorExpiredError, dep_errors.CursorInvalidError):
                if not account.sync_cursor:
                    raise
                logger.info("Fetch cursor of DEP account %s refused: full fetch again", account.pk)
                more_promised = False
                fetch_restart(account, now)
                continue
            more_promised = page.more_to_follow
            stalled = stalled + 1 if page.more_to_follow and page.cursor in sent else 0
            sent.add(page.cursor)
            yield page, Phase.FETCH
            if not page.more_to_follow:
                fetch_finish(account, now)
                return
        else:
            try:
                page = client.devices_sync(cursor=account.sync_cursor, limit=PAGE_LIMIT)
            except (
                dep_errors.CursorExpiredError,
                dep_errors.CursorInvalidError,
                dep_errors.CursorExhaustedError,
            ):
                logger.info("Cursor of DEP account %s no longer valid: full fetch", account.pk)
                fetch_restart(account, now)
                continue
            stalled = stalled + 1 if page.more_to_follow and page.cursor in sent else 0
            sent.add(page.cursor)
            yield page, Phase.SYNC
            if not page.more_to_follow:
                return


def pages_save(client: apple_client.DEPClient, account: DEPAccount, now: datetime) -> list[str]:
    """Save Apple's pages; a cursor that stops making progress is discarded once for a full
    fetch, and a full fetch that sticks too raises CursorStuckError."""
    new_serials: list[str] = []
    licence = licence_current()
    stored_at_most = licence_devices_stored() if licence is not None else 0
    for attempt in range(2):
        try:
            for page, phase in _pages(client, account, now):
                admitted, held_back = licence_devices_admit(
                    account=account,
                    devices=page.devices,
                    licence=licence,
                    stored_at_most=stored_at_most + len(new_serials),
                )
                if held_back:
                    # The cursor stays before this page, so a sync after the upgrade takes the
                    # devices held back; those admitted from it are stored now.
                    page = replace(page, devices=tuple(admitted), cursor="")
                new_serials += page_save(account=account, page=page, phase=phase, now=now)
                if held_back:
                    raise licence_limit_reached()
        except CursorStuckError as stuck:
            if attempt:
                raise CursorStuckError(status=stuck.status) from stuck
            cursor_discard(account, now, reason=stuck.message)
        else:
            break
    return new_serials
