"""Links that leave the portal (emails, calendar feeds, webhooks, the command line)."""

from __future__ import annotations

from django.conf import settings


def portal_url(path: str) -> str:
    """The absolute URL of a portal path, at the address admins reach it (`PORTAL_BASE_URL`)."""
    return settings.PORTAL_BASE_URL.rstrip("/") + path
