"""Every yearly Apple credential the portal keeps, of every kind, in one registry.

A kind (DEP accounts' server tokens, Apps and Books content tokens, the APNs push certificate)
gives its rows for Admin > Apple Credentials, the CSV, the API and /metrics, its banner problems,
which `services.expiry` merges so the most urgent of any kind come first, and optionally the
reminders due for it. A new kind adds a module here and one `CredentialKind` to
`CREDENTIAL_KINDS`, nothing else. The package reads models only, so every service may import it.
"""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from dep_accounts.services.credentials import apns, content_tokens, dep
from dep_accounts.services.credentials.base import (
    BANNER_SHOWN,
    BannerProblem,
    CredentialKind,
    CredentialRow,
    ReminderDue,
)
from dep_accounts.services.credentials.content_tokens import content_token_row
from dep_accounts.services.credentials.dep import dep_account_row, old_token_reset_text
from dep_accounts.services.push import expiry as push_expiry

__all__ = [
    "BANNER_SHOWN",
    "CREDENTIAL_KINDS",
    "KIND_LABELS",
    "BannerProblem",
    "CredentialKind",
    "CredentialRow",
    "ReminderDue",
    "content_token_row",
    "credential_banner_items",
    "credentials_all",
    "dep_account_row",
    "old_token_reset_text",
]

CREDENTIAL_KINDS: tuple[CredentialKind, ...] = (
    CredentialKind(
        kind="dep_account",
        label="DEP server token",
        plural="DEP accounts",
        list_url_name="dep_accounts:list",
        rows=dep.dep_rows,
        banner_problems=dep.dep_banner_problems,
    ),
    CredentialKind(
        kind="content_token",
        label="Apps and Books content token",
        plural="content tokens",
        list_url_name="dep_accounts:content_tokens",
        rows=content_tokens.content_token_rows,
        banner_problems=content_tokens.content_token_banner_problems,
        reminders_due=content_tokens.content_token_reminders_due,
    ),
    CredentialKind(
        kind=push_expiry.KIND,
        label=push_expiry.KIND_LABEL,
        plural="push certificates",
        list_url_name="dep_accounts:push",
        rows=apns.apns_rows,
        banner_problems=apns.apns_banner_problems,
    ),
)
KIND_LABELS = {kind.kind: kind.label for kind in CREDENTIAL_KINDS}


def credentials_all(*, now: datetime | None = None) -> list[CredentialRow]:
    """Every credential of every kind, soonest expiry first (those without one last)."""
    now = now or timezone.now()
    rows = [row for kind in CREDENTIAL_KINDS for row in kind.rows(now)]
    return sorted(rows, key=lambda r: (r.expires_at is None, r.expires_at or now, r.kind, r.name))


def credential_banner_items(*, now: datetime) -> list[dict[str, str]]:
    """The banner's credential lines: the BANNER_SHOWN most urgent of any kind, then one line
    that counts the rest (a banner taller than the page helps nobody)."""
    found = [(kind, *kind.banner_problems(now)) for kind in CREDENTIAL_KINDS]
    problems = sorted(
        ((problem, kind) for kind, kind_problems, _total in found for problem in kind_problems),
        key=lambda pair: (pair[0].rank, pair[0].expires_at is None, pair[0].expires_at or now),
    )
    items = [problem.item for problem, _kind in problems[:BANNER_SHOWN]]
    shown = {kind.kind: 0 for kind in CREDENTIAL_KINDS}
    for _problem, kind in problems[:BANNER_SHOWN]:
        shown[kind.kind] += 1
    rest = {kind: total - shown[kind.kind] for kind, _problems, total in found}
    more = sum(rest.values())
    if more <= 0:
        return items
    kinds_left = [kind for kind, count in rest.items() if count > 0]
    if len(kinds_left) == 1:
        noun, url = kinds_left[0].plural, reverse(kinds_left[0].list_url_name)
    else:
        noun, url = "Apple credentials", reverse("dep_accounts:credentials")
    noun = noun if more != 1 else noun.removesuffix("s")
    items.append(
        {
            "level": problems[BANNER_SHOWN][0].item["level"],
            "text": f"{more} more {noun} need{'s' * (more == 1)} attention: expiring, expired "
            "or refused by Apple.",
            "action": "See them all",
            "url": url,
            "view_url": url,
        }
    )
    return items
