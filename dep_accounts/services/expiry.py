"""Expiry state and the banner: beat → each account's state → the banner every page shows.

The banner names the credentials of every kind in trouble (server tokens, content tokens, ...),
most urgent first, from the registry in `services.credentials`.

The hourly beat task calls `token_states_refresh` and `banner_refresh`; an upload, a sync or a
guarded renewal that learns something about a token calls `account_state_set`, which rebuilds
the banner too. The banner is stored as one row so that a page view reads it in one query.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, F, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import AuditEvent, Banner, DEPAccount, SubscriptionLicence
from dep_accounts.selectors import email_problem, licence_current, licence_devices_stored
from dep_accounts.services.audit import audit_record
from dep_accounts.services.credentials import BANNER_SHOWN, credential_banner_items
from dep_accounts.services.expiry_stage import expiry_state_for
from dep_accounts.services.webhooks import webhooks_emit_account_state

State = DEPAccount.State


def token_state_for(*, expires_at: datetime | None, now: datetime) -> tuple[str, str]:
    """The state a token's expiry alone gives, with the reason shown to admins."""
    if expires_at is None:
        return State.AWAITING_TOKEN, "Upload a server token from Apple Business Manager."
    return expiry_state_for(expires_at=expires_at, now=now, what="server token")


def token_states_refresh(*, now: datetime | None = None) -> int:
    """Recompute the expiry state of the accounts the clock has moved, in one UPDATE, and
    return how many changed; Apple's verdicts stay until expiry.

    Only rows whose state is out of date are written: each branch of the filter is a range of
    the (state, token expiry) index, so an hour that moves three accounts touches three rows.
    """
    now = now or timezone.now()
    critical = now + timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS)
    warning = now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS)
    apple_verdicts = [State.REJECTED, State.TERMS_NOT_ACCEPTED]
    out_of_date = (
        Q(state=State.AWAITING_TOKEN)
        | Q(state=State.OK, token_expires_at__lte=warning)
        | Q(state=State.WARNING, token_expires_at__lte=critical)
        | Q(state=State.WARNING, token_expires_at__gt=warning)
        | Q(state=State.CRITICAL, token_expires_at__lte=now)
        | Q(state=State.CRITICAL, token_expires_at__gt=critical)
        | Q(state=State.EXPIRED, token_expires_at__gt=now)
        | Q(state__in=apple_verdicts, token_expires_at__lte=now)
    )
    return DEPAccount.objects.filter(out_of_date, token_expires_at__isnull=False).update(
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


def banner_items_compute(*, now: datetime) -> list[dict[str, str]]:
    """The problems every page lists: the credentials of every kind (most urgent first, see
    `services.credentials`), then devices not syncing, the licence and undelivered emails."""
    items = credential_banner_items(now=now)
    alerted = DEPAccount.objects.exclude(sync_alert="").only(
        "id", "display_name", "server_name", "sync_alert"
    )
    for stalled in alerted[:BANNER_SHOWN]:
        detail_url = reverse("dep_accounts:detail", args=[stalled.pk])
        items.append(
            {
                "level": "warning",
                "text": f"Devices of “{stalled.name}” are not syncing: {stalled.sync_alert}",
                "action": "See the account",
                "url": detail_url,
                "view_url": detail_url,
            }
        )
    licence = licence_current()
    licence_url = reverse("dep_accounts:subscription")
    if licence is None:
        items.append(
            {
                "level": "critical",
                "text": "No subscription licence is installed: DEP accounts cannot be synced.",
                "action": "Upload a licence",
                "url": licence_url,
            }
        )
    elif licence.valid_until <= now:
        items.append(
            {
                "level": "critical",
                "text": f"The subscription licence expired on {licence.valid_until:%-d %b %Y}: "
                "DEP accounts cannot be synced until it is renewed.",
                "action": "Renew the subscription",
                "url": licence_url,
            }
        )
    elif licence.valid_until <= now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS):
        items.append(
            {
                "level": "warning",
                "text": f"The subscription licence expires on {licence.valid_until:%-d %b %Y}.",
                "action": "Renew the subscription",
                "url": licence_url,
            }
        )
    items += licence_banner_items(licence, now=now)
    problem = email_problem(now=now)
    if problem:
        audit_url = reverse("dep_accounts:audit_log")
        items.append(
            {
                "level": "critical",
                "text": f"Renewal reminders could not be emailed: {problem}",
                "action": "See the audit log",
                "url": f"{audit_url}?action={AuditEvent.Action.EMAIL_FAILED}",
            }
        )
    return items


def licence_limit_text(*, stored: int, device_limit: int) -> str:
    return (
        f"{stored:,} of {device_limit:,} devices: upgrade the licence. Devices beyond the "
        "licence's limit are not synced from Apple; those stored so far stay."
    )


def licence_banner_items(licence: SubscriptionLicence | None, *, now: datetime) -> list[dict]:
    """The banner's lines on a licence that is not valid yet or whose device limit is reached."""
    if licence is None or licence.is_expired(now):
        return []
    url = reverse("dep_accounts:subscription")
    if licence.valid_from > now:
        return [
            {
                "level": "critical",
                "text": f"The subscription licence starts on {licence.valid_from:%-d %b %Y}: "
                "DEP accounts cannot be synced until then.",
                "action": "Upload a licence valid today",
                "url": url,
            }
        ]
    stored = licence_devices_stored()
    if stored < licence.device_limit:
        return []
    return [
        {
            "level": "critical",
            "text": licence_limit_text(stored=stored, device_limit=licence.device_limit),
            "action": "Upgrade the licence",
            "url": url,
        }
    ]
