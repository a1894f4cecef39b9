"""How close a yearly credential from Apple is to its expiry: one rule for every kind.

A leaf module (models and settings only), so that each kind's state code can use it without
importing the banner and the credential registry that import those kinds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

# The state values every credential model shares (DEPAccount.State, ContentToken.State, ...).
OK, WARNING, CRITICAL, EXPIRED = "ok", "warning", "critical", "expired"


def expiry_state_for(*, expires_at: datetime, now: datetime, what: str) -> tuple[str, str]:
    """The state an expiry alone gives, with the reason shown to admins (`what`: "server token",
    "content token", "push certificate")."""
    if expires_at <= now:
        return EXPIRED, f"The {what} expired on {expires_at:%-d %b %Y}."
    if expires_at <= now + timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS):
        return CRITICAL, f"The {what} expires on {expires_at:%-d %b %Y}."
    if expires_at <= now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS):
        return WARNING, f"The {what} expires on {expires_at:%-d %b %Y}."
    return OK, ""
