"""Thin Celery tasks: look the object up, call the service."""

from __future__ import annotations

import logging

from celery import shared_task

from dep_accounts.models import DEPAccount
from dep_accounts.services import outbox, webhooks
from dep_accounts.services.guarded import guarded_renewals_check
from dep_accounts.services.reminders import licence_reminders_send, reminders_send
from dep_accounts.services.sync import SyncBusyError, accounts_due_for_sync, devices_sync
from dep_accounts.services.tokens import banner_refresh, token_states_refresh

logger = logging.getLogger(__name__)


@shared_task
def token_expiry_refresh() -> None:
    """Hourly: token expiry states, the banner, the reminders and licence webhooks due."""
    token_states_refresh()
    banner_refresh()
    reminders_send()
    licence_reminders_send()
    webhooks.webhooks_emit_licence_expiring()


@shared_task
def syncs_dispatch_due() -> None:
    """Every minute: queue a sync for each account whose interval or retry time has come."""
    for account_id in accounts_due_for_sync():
        account_sync.delay(account_id)


@shared_task(bind=True, max_retries=3)
def account_sync(self, account_id: int) -> None:
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


@shared_task
def webhook_delivery_send(delivery_id: int) -> None:
    """Send a new webhook delivery at once; the beat task retries it if this fails."""
    webhooks.webhook_delivery_send(delivery_id=delivery_id)


@shared_task
def webhook_deliveries_send_due() -> None:
    """Every minute: send the webhook deliveries whose next attempt is due."""
    webhooks.webhook_deliveries_send_due()


@shared_task
def guarded_renewals_watch() -> None:
    """Every 5 minutes: try the old token of each account whose renewal was started."""
    guarded_renewals_check()


@shared_task
def emails_send_due() -> None:
    """Every minute: emails whose send was interrupted or is due again."""
    outbox.emails_send_due()
