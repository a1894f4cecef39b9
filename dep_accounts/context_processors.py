from __future__ import annotations

from django.http import HttpRequest

from dep_accounts.selectors import banner_items


def banner(request: HttpRequest) -> dict[str, object]:
    """The banner for signed-in users, read in at most one query."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"banner_items": []}
    return {"banner_items": banner_items()}
