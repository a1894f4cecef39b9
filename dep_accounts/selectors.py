"""Reads that several places share: the banner, the DEP accounts list, the licence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, F, IntegerField, QuerySet, Value, When, Window
from django.urls import reverse

from dep_accounts.models import (
    AuditEvent,
    Banner,
    DEPAccount,
    OutboundEmail,
    ServerToken,
    SubscriptionLicence,
)

State = DEPAccount.State

# Most urgent first: Apple no longer accepts the token, then the time-driven states.
_URGENCY = {
    State.REJECTED: 0,
    State.EXPIRED: 1,
    State.TERMS_NOT_ACCEPTED: 2,
    State.CRITICAL: 3,
    State.WARNING: 4,
}
_LEVEL = {
    State.REJECTED: "critical",
    State.EXPIRED: "critical",
    State.TERMS_NOT_ACCEPTED: "critical",
    State.CRITICAL: "critical",
    State.WARNING: "warning",
}


def old_token_reset_text(account: DEPAccount, *, now: datetime) -> str:
    """What a guarded renewal says once Apple rejects the old token: upload the new one now."""
    minutes = max(int((now - account.old_token_rejected_at).total_seconds() // 60), 0)
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
    alerted = DEPAccount.objects.exclude(sync_alert="").only(
        "id", "display_name", "server_name", "sync_alert"
    )
    for account in alerted[:BANNER_ACCOUNTS_SHOWN]:
        detail_url = reverse("dep_accounts:detail", args=[account.pk])
        items.append(
            {
                "level": "warning",
                "text": f"Devices of “{account.name}” are not syncing: {account.sync_alert}",
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
    from dep_accounts.services.licence import licence_banner_items

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


def email_problem(*, now: datetime) -> str:
    """Why a notification email of the last week was not delivered, until its recipient gets
    a later one."""
    Status = OutboundEmail.Status
    notifications = OutboundEmail.objects.exclude(kind=OutboundEmail.Kind.TEST)
    failed = (
        notifications.filter(
            status__in=[Status.FAILED, Status.UNCERTAIN],
            created_at__gte=now - timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS),
        )
        .order_by("-created_at")
        .values_list("created_at", "recipient", "last_answer")
        .first()
    )
    if failed is None:
        return ""
    failed_at, recipient, answer = failed
    later = notifications.filter(status=Status.SENT, recipient=recipient, created_at__gt=failed_at)
    return "" if later.exists() else answer


def banner_items() -> list[dict[str, str]]:
    """The stored banner, in one query."""
    items = Banner.objects.filter(pk=1).values_list("items", flat=True).first()
    return items or []


def dep_accounts_list() -> QuerySet[DEPAccount]:
    """DEP accounts, soonest expiry first; no per-row queries."""
    return DEPAccount.objects.order_by(F("token_expires_at").asc(nulls_last=True), "id")


def licence_current() -> SubscriptionLicence | None:
    return SubscriptionLicence.objects.filter(is_current=True).first()


@dataclass(frozen=True)
class TokenCustodian:
    """An Apple ID and the tokens it downloaded in ABM, one after the other."""

    apple_id: str
    token_count: int
    first_uploaded_at: datetime
    last_uploaded_at: datetime
    # Who uploaded the first of these tokens: the one that changed the Apple ID, if any.
    uploaded_by: str
    changed_from: str
    change_confirmed: bool
    is_current: bool


def token_custodians(server_tokens: Iterable[ServerToken]) -> list[TokenCustodian]:
    """Who downloaded the tokens, in upload order: one entry per run of the same Apple ID,
    with each change of Apple ID marked."""
    runs: list[list[ServerToken]] = []
    for token in sorted(server_tokens, key=lambda t: (t.uploaded_at, t.pk)):
        if runs and runs[-1][0].admin_apple_id == token.admin_apple_id:
            runs[-1].append(token)
        else:
            runs.append([token])
    custodians = []
    previous = ""
    for run in runs:
        first = run[0]
        changed = bool(previous and first.admin_apple_id and first.admin_apple_id != previous)
        custodians.append(
            TokenCustodian(
                apple_id=first.admin_apple_id,
                token_count=len(run),
                first_uploaded_at=first.uploaded_at,
                last_uploaded_at=run[-1].uploaded_at,
                uploaded_by=first.uploaded_by.get_username() if first.uploaded_by else "",
                changed_from=previous if changed else "",
                change_confirmed=changed and first.apple_id_change_confirmed,
                is_current=any(token.is_current for token in run),
            )
        )
        previous = first.admin_apple_id or previous
    return custodians
