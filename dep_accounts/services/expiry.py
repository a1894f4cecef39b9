"""Expiry state and the banner: beat → each account's state → the banner every page shows.

The hourly beat task calls `token_states_refresh` and `banner_refresh`; an upload, a sync or a
guarded renewal that learns something about a token calls `account_state_set`, which rebuilds
the banner too. The banner is stored as one row so that a page view reads it in one query.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, F, IntegerField, Value, When, Window
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import AuditEvent, Banner, DEPAccount, SubscriptionLicence
from dep_accounts.selectors import email_problem, licence_current, licence_devices_stored
from dep_accounts.services.audit import audit_record
from dep_accounts.services.push.expiry import apns_banner_items
from dep_accounts.services.webhooks import webhooks_emit_account_state

State = DEPAccount.State


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


# Most urgent first: Apple no longer accepts the token, then the time-driven states.
_URGENCY = {
    State.REJECTED: 0,
    State.EXPIRED: 1,
    State.TERMS_NOT_ACCEPTED: 2,
    State.CRITICAL: 3,
    State.WARNING: 4,
}
_LEVEL: dict[str, str] = {
    State.REJECTED: "critical",
    State.EXPIRED: "critical",
    State.TERMS_NOT_ACCEPTED: "critical",
    State.CRITICAL: "critical",
    State.WARNING: "warning",
}


def old_token_reset_text(account: DEPAccount, *, now: datetime) -> str:
    """What a guarded renewal says once Apple rejects the old token: upload the new one now."""
    rejected_at = account.old_token_rejected_at
    assert rejected_at is not None, "only for an account whose old token Apple rejected"
    minutes = max(int((now - rejected_at).total_seconds() // 60), 0)
    if minutes == 0:
        ago = "less than a minute ago"
    elif minutes < 120:
        ago = f"{minutes} minute{'s' * (minutes != 1)} ago"
    else:
        ago = f"{minutes // 60} hours ago"
    return f"The old server token of “{account.name}” was reset {ago}: upload the new file now."


def _account_banner_text(account: DEPAccount, now: datetime) -> tuple[str, str]:
    name = account.name
    if account.state == State.REJECTED and account.old_token_rejected_at is not None:
        return old_token_reset_text(account, now=now), "Upload the new token"
    if account.state == State.REJECTED:
        return (
            f"Apple no longer accepts the server token of “{name}”: it was reset by a new "
            "download in Apple Business Manager. Upload the new token.",
            "Upload the new token",
        )
    if account.state == State.EXPIRED:
        return (
            f"The server token of “{name}” expired on {account.token_expires_at:%-d %b %Y}. "
            "Devices no longer sync: download a new token in ABM and upload it.",
            "Renew now",
        )
    if account.state == State.TERMS_NOT_ACCEPTED:
        return (
            f"Apple has new terms and conditions for the organisation of “{name}”. "
            "An administrator must accept them in Apple Business Manager before devices sync.",
            "See what to do",
        )
    days = account.days_left(now)
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    return (
        f"The server token of “{name}” expires {when} ({account.token_expires_at:%-d %b %Y}).",
        "Renew the token",
    )


BANNER_ACCOUNTS_SHOWN = 5


def _fix_anchor(account: DEPAccount) -> str:
    """Token problems are fixed under Upload Token, far down the Edit DEP Account page."""
    return "" if account.state == State.TERMS_NOT_ACCEPTED else "#upload-token"


def banner_items_compute(*, now: datetime) -> list[dict[str, str]]:
    """The problems every page lists, most urgent first, in one query for the accounts and
    one for the licence. Past BANNER_ACCOUNTS_SHOWN accounts, one line counts the rest: a
    banner taller than the page helps nobody, and the list shows them all, soonest first."""
    problems = DEPAccount.objects.filter(state__in=list(_URGENCY))
    accounts = list(
        problems.only(
            "id",
            "display_name",
            "server_name",
            "state",
            "token_expires_at",
            "old_token_rejected_at",
        )
        .annotate(
            urgency=Case(
                *(When(state=state, then=Value(rank)) for state, rank in _URGENCY.items()),
                output_field=IntegerField(),
            ),
            problems_total=Window(Count("id")),
        )
        .order_by("urgency", F("token_expires_at").asc(nulls_last=True), "id")[
            : BANNER_ACCOUNTS_SHOWN + 1
        ]
    )
    items = []
    for account in accounts[:BANNER_ACCOUNTS_SHOWN]:
        text, action = _account_banner_text(account, now)
        items.append(
            {
                "level": _LEVEL[account.state],
                "text": text,
                "action": action,
                "url": reverse("dep_accounts:edit", args=[account.pk]) + _fix_anchor(account),
                "view_url": reverse("dep_accounts:detail", args=[account.pk]),
            }
        )
    if len(accounts) > BANNER_ACCOUNTS_SHOWN:
        more = accounts[0].problems_total - BANNER_ACCOUNTS_SHOWN
        list_url = reverse("dep_accounts:list")
        items.append(
            {
                "level": _LEVEL[accounts[BANNER_ACCOUNTS_SHOWN].state],
                "text": f"{more} more DEP account{'s' * (more != 1)} need attention: "
                "expiring, expired or refused by Apple.",
                "action": "See them all",
                "url": list_url,
                "view_url": list_url,
            }
        )
    items += apns_banner_items(now=now)
    alerted = DEPAccount.objects.exclude(sync_alert="").only(
        "id", "display_name", "server_name", "sync_alert"
    )
    for stalled in alerted[:BANNER_ACCOUNTS_SHOWN]:
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
