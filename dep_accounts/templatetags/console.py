"""Template filters of the admin console: state colours, days left, roles, navigation."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from dep_accounts import roles
from dep_accounts.models import AuditEvent, DEPAccount, calendar_days_until

register = template.Library()

State = DEPAccount.State
_STATE_TONES: dict[str, str] = {
    State.OK: "ok",
    State.WARNING: "warning",
    State.CRITICAL: "critical",
    State.EXPIRED: "critical",
    State.REJECTED: "critical",
    State.TERMS_NOT_ACCEPTED: "critical",
    State.AWAITING_TOKEN: "muted",
}
_SYNC_TONES: dict[str, str] = {
    DEPAccount.SyncResult.OK: "ok",
    DEPAccount.SyncResult.FAILED: "critical",
    DEPAccount.SyncResult.WAITING: "warning",
    DEPAccount.SyncResult.RUNNING: "info",
    DEPAccount.SyncResult.NEVER: "muted",
}
_NAV_SECTIONS = {
    "dashboard": "dashboard",
    "list": "accounts",
    "add": "accounts",
    "add_token": "accounts",
    "add_confirm": "accounts",
    "detail": "accounts",
    "edit": "accounts",
    "devices": "devices",
    "profiles": "profiles",
    "profile_add": "profiles",
    "profile_assign": "profiles",
    "subscription": "subscription",
    "audit_log": "audit_log",
    "push": "push",
    "push_edit": "push",
}


@register.filter
def state_tone(state: str) -> str:
    """The colour of an account state: ok, warning, critical, or muted while awaiting a token."""
    return _STATE_TONES.get(state, "muted")


@register.filter
def sync_tone(result: str) -> str:
    return _SYNC_TONES.get(result, "muted")


@register.filter
def outcome_tone(outcome: str) -> str:
    return "ok" if outcome == AuditEvent.Outcome.SUCCESS else "critical"


@register.filter
def days_until(moment: datetime | None) -> int | None:
    """Calendar days from today until `moment`, like DEPAccount.days_left."""
    if moment is None:
        return None
    return calendar_days_until(moment)


@register.filter
def days_left_text(days: int | None) -> str:
    if days is None:
        return ""
    if days < -1:
        return f"expired {-days} days ago"
    if days == -1:
        return "expired yesterday"
    if days == 0:
        return "expires today"
    if days == 1:
        return "1 day left"
    return f"{days} days left"


@register.filter
def ago(moment: datetime | None) -> str:
    """“17 minutes ago”: the largest unit only, to keep table cells short."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


@register.filter
def apple_id_wrap(apple_id: str) -> str:
    """An Apple ID that may wrap before its @ rather than anywhere in a narrow column."""
    local, at, domain = apple_id.partition("@")
    if not at:
        return apple_id
    return format_html("{}<wbr>@{}", local, domain)


@register.filter
def can_manage(user) -> bool:
    return roles.can_manage(user)


@register.filter
def can_view(user) -> bool:
    return roles.can_view(user)


@register.filter
def role_name(user) -> str:
    if roles.can_manage(user):
        return "Admin"
    if roles.can_view(user):
        return "Viewer"
    return "No role"


@register.filter
def nav_section(url_name: str | None) -> str:
    """The navigation entry a page belongs to, to mark it as the current one."""
    return _NAV_SECTIONS.get(url_name or "", "")


@register.simple_tag(takes_context=True)
def page_query(context: template.Context, number: int) -> str:
    """The query string of another page of a list, keeping its search and filters."""
    query = context["request"].GET.copy()
    query["page"] = number
    return query.urlencode()


@register.filter
def thousands(number: int | None) -> str:
    """100000 as “100,000”, so that fleet sizes read at a glance."""
    return "" if number is None else f"{number:,}"


# Apple's raw values, as an admin reads them.
_APPLE_LABELS = {
    "OSX": "macOS",
    "empty": "No profile",
    "assigned": "Assigned",
    "pushed": "Pushed",
    "removed": "Removed",
    "edu": "Education",
    "org": "Organisation",
}


@register.filter
def apple_label(value: str) -> str:
    return _APPLE_LABELS.get(value, value)
