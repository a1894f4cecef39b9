"""The beat's entry points, thin: each calls services (settings.CELERY_BEAT_SCHEDULE names them).

Tasks that a service queues itself live beside it, on `AfterCommitTask`: `sync.account_sync`
and `webhooks.webhook_delivery_send_task`.
"""

from __future__ import annotations

from celery import shared_task

from dep_accounts.services import outbox, webhooks
from dep_accounts.services.content_tokens.state import (
    content_token_states_refresh,
    content_tokens_check,
)
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.push.expiry import push_state_refresh
from dep_accounts.services.push.reminders import apns_reminders_send
from dep_accounts.services.reminders import (
    credential_reminders_send,
    licence_reminders_send,
    reminders_send,
)
from dep_accounts.services.renewal.watch import guarded_renewals_check
from dep_accounts.services.sync_requests import syncs_dispatch


@shared_task
def token_expiry_refresh() -> None:
    """Hourly: every credential's expiry state (server tokens, content tokens, the push
    certificate), the banner, the reminders and licence webhooks due."""
    token_states_refresh()
    content_token_states_refresh()
    push_state_refresh()
    banner_refresh()
    reminders_send()
    credential_reminders_send()
    apns_reminders_send()
    licence_reminders_send()
    webhooks.webhooks_emit_licence_expiring()


@shared_task
def content_tokens_check_with_apple() -> None:
    """Daily: ask Apple whether each content token still works and who manages its location."""
    content_tokens_check()
    banner_refresh()


@shared_task
def syncs_dispatch_due() -> None:
    """Every minute and at each worker's start: queue a sync for each account whose interval or
    retry time has come, unless one is queued or running already."""
    syncs_dispatch()


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
