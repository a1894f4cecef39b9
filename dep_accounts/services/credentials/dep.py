"""DEP accounts (their server tokens) as a kind of Apple credential: rows and banner lines."""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse

from dep_accounts.models import DEPAccount
from dep_accounts.services.credentials.base import (
    BLOCKED,
    CRITICAL,
    EXPIRED,
    LEVELS,
    REFUSED,
    WARNING,
    BannerProblem,
    CredentialRow,
    ranked_problems,
    when_text,
)

DEPState = DEPAccount.State


def dep_account_row(account: DEPAccount, *, now: datetime) -> CredentialRow:
    return CredentialRow(
        kind="dep_account",
        kind_label="DEP server token",
        name=account.name,
        expires_at=account.token_expires_at,
        days_left=account.days_left(now),
        state=account.state,
        state_label=account.get_state_display(),
        apple_id=account.admin_apple_id,
        detail_url=account.get_absolute_url(),
        edit_url=reverse("dep_accounts:edit", args=[account.pk]),
    )


def dep_rows(now: datetime) -> list[CredentialRow]:
    fields = ("id", "display_name", "server_name", "state", "token_expires_at", "admin_apple_id")
    return [dep_account_row(a, now=now) for a in DEPAccount.objects.only(*fields)]


_DEP_RANKS: dict[str, int] = {
    DEPState.REJECTED: REFUSED,
    DEPState.EXPIRED: EXPIRED,
    DEPState.TERMS_NOT_ACCEPTED: BLOCKED,
    DEPState.CRITICAL: CRITICAL,
    DEPState.WARNING: WARNING,
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


def _dep_banner_text(account: DEPAccount, now: datetime) -> tuple[str, str]:
    name = account.name
    if account.state == DEPState.REJECTED and account.old_token_rejected_at is not None:
        return old_token_reset_text(account, now=now), "Upload the new token"
    if account.state == DEPState.REJECTED:
        return (
            f"Apple no longer accepts the server token of “{name}”: it was reset by a new "
            "download in Apple Business Manager. Upload the new token.",
            "Upload the new token",
        )
    if account.state == DEPState.EXPIRED:
        return (
            f"The server token of “{name}” expired on {account.token_expires_at:%-d %b %Y}. "
            "Devices no longer sync: download a new token in ABM and upload it.",
            "Renew now",
        )
    if account.state == DEPState.TERMS_NOT_ACCEPTED:
        return (
            f"Apple has new terms and conditions for the organisation of “{name}”. "
            "An administrator must accept them in Apple Business Manager before devices sync.",
            "See what to do",
        )
    days = account.days_left(now)
    assert days is not None and account.token_expires_at is not None, "a state from its expiry"
    return (
        f"The server token of “{name}” expires {when_text(days)} "
        f"({account.token_expires_at:%-d %b %Y}).",
        "Renew the token",
    )


def dep_banner_problems(now: datetime) -> tuple[list[BannerProblem], int]:
    fields = ("id", "display_name", "server_name", "state", "token_expires_at")
    accounts = list(
        ranked_problems(
            DEPAccount.objects.only(*fields, "old_token_rejected_at"),
            _DEP_RANKS,
            "token_expires_at",
        )
    )
    problems = []
    for account in accounts:
        text, action = _dep_banner_text(account, now)
        # Token problems are fixed under Upload Token, far down the Edit DEP Account page.
        anchor = "" if account.state == DEPState.TERMS_NOT_ACCEPTED else "#upload-token"
        item = {
            "level": LEVELS.get(account.urgency, "warning"),
            "text": text,
            "action": action,
            "url": reverse("dep_accounts:edit", args=[account.pk]) + anchor,
            "view_url": account.get_absolute_url(),
        }
        problems.append(BannerProblem(account.urgency, account.token_expires_at, item))
    return problems, accounts[0].problems_total if accounts else 0
