from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from dep_accounts.selectors import banner_items


def banner(request: HttpRequest) -> dict[str, object]:
    """The banner for signed-in users, read in at most one query."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"banner_items": []}
    return {"banner_items": banner_items()}


def debug_outbox(request: HttpRequest) -> dict[str, object]:
    """Admin > Outbox, the demo's caught emails, is in the menu only in DEBUG."""
    return {"debug_outbox": settings.DEBUG}
