"""Every yearly Apple credential the portal keeps, of every kind, in one registry.

A kind (DEP accounts' server tokens, Apps and Books content tokens, ...) gives two reads: its
rows for Admin > Apple Credentials, the CSV, the API, /metrics and the calendar feed, and its
banner problems, which `services.expiry` merges so the most urgent of any kind come first.
A new kind adds its two functions and one `CredentialKind` to `CREDENTIAL_KINDS`, nothing else.
This module reads models only, so that every service may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, Count, F, IntegerField, Value, When, Window
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import ContentToken, DEPAccount
from dep_accounts.services.push import expiry as push_expiry

DEPState = DEPAccount.State
CTState = ContentToken.State
# How many problems of one kind the banner names; past that, one line counts the rest.
BANNER_SHOWN = 5
# Most urgent first, on one scale for every kind: Apple refuses it, it expired, someone must
# act in Apple's portal, then the time-driven states.
REFUSED, EXPIRED, BLOCKED, CRITICAL, WARNING = range(5)
DAY = timedelta(days=1)
LEVELS = {REFUSED: "critical", EXPIRED: "critical", BLOCKED: "critical", CRITICAL: "critical"}


@dataclass(frozen=True)
class CredentialRow:
    """One credential as every list shows it, whatever its kind."""

    kind: str
    kind_label: str
    name: str
    expires_at: datetime | None
    days_left: int | None
    state: str
    state_label: str
    apple_id: str
    detail_url: str
    edit_url: str


@dataclass(frozen=True)
class BannerProblem:
    """One banner line, with where it ranks among the problems of every kind."""

    rank: int
    expires_at: datetime | None
    item: dict[str, str]


@dataclass(frozen=True)
class ReminderDue:
    """A credential a renewal reminder may be due for (kinds other than DEP accounts, whose
    reminders keep their own ReminderSent rows).

    `version` names this issue of the credential: a renewal starts the steps again.
    `contacts` are the credential's own notification addresses, besides every admin.
    """

    row: CredentialRow
    version: str
    contacts: list[str]
    renew_steps: str
    audit_subject: dict[str, object]


@dataclass(frozen=True)
class CredentialKind:
    kind: str
    label: str
    plural: str  # "DEP accounts", for the banner's "4 more DEP accounts need attention"
    list_url_name: str
    rows: Callable[[datetime], list[CredentialRow]]
    # The first BANNER_SHOWN + 1 problems, most urgent first, and how many there are in all.
    banner_problems: Callable[[datetime], tuple[list[BannerProblem], int]]
    # Credentials expiring before the horizon (now, horizon); None: the kind reminds on its own.
    reminders_due: Callable[[datetime, datetime], list[ReminderDue]] | None = None


# DEP accounts.


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


def _dep_rows(now: datetime) -> list[CredentialRow]:
    fields = ("id", "display_name", "server_name", "state", "token_expires_at", "admin_apple_id")
    return [dep_account_row(a, now=now) for a in DEPAccount.objects.only(*fields)]


_DEP_RANKS = {
    DEPState.REJECTED: REFUSED,
    DEPState.EXPIRED: EXPIRED,
    DEPState.TERMS_NOT_ACCEPTED: BLOCKED,
    DEPState.CRITICAL: CRITICAL,
    DEPState.WARNING: WARNING,
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
    return (
        f"The server token of “{name}” expires {_when(account.days_left(now))} "
        f"({account.token_expires_at:%-d %b %Y}).",
        "Renew the token",
    )


def _when(days: int) -> str:
    return "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"


def _ranked(rows, ranks: dict[str, int], expiry_field: str):
    """The rows in a problem state, most urgent first, each with the count of them all."""
    return (
        rows.filter(state__in=list(ranks))
        .annotate(
            urgency=Case(
                *(When(state=state, then=Value(rank)) for state, rank in ranks.items()),
                output_field=IntegerField(),
            ),
            problems_total=Window(Count("id")),
        )
        .order_by("urgency", F(expiry_field).asc(nulls_last=True), "id")[: BANNER_SHOWN + 1]
    )


def _dep_banner_problems(now: datetime) -> tuple[list[BannerProblem], int]:
    fields = ("id", "display_name", "server_name", "state", "token_expires_at")
    accounts = list(
        _ranked(
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


# Apps and Books content tokens.


def content_token_row(content_token: ContentToken, *, now: datetime) -> CredentialRow:
    return CredentialRow(
        kind="content_token",
        kind_label="Apps and Books content token",
        name=content_token.name,
        expires_at=content_token.expires_at,
        days_left=content_token.days_left(now),
        state=content_token.state,
        state_label=content_token.get_state_display(),
        apple_id=content_token.apple_id,
        detail_url=content_token.get_absolute_url(),
        edit_url=reverse("dep_accounts:content_token_edit", args=[content_token.pk]),
    )


def _content_token_rows(now: datetime) -> list[CredentialRow]:
    fields = ("id", "location_name", "state", "expires_at", "apple_id")
    return [content_token_row(c, now=now) for c in ContentToken.objects.only(*fields)]


_CT_RANKS = {
    CTState.REVOKED: REFUSED,
    CTState.INVALID: REFUSED,
    CTState.EXPIRED: EXPIRED,
    CTState.ANOTHER_MDM: BLOCKED,
    CTState.CRITICAL: CRITICAL,
    CTState.WARNING: WARNING,
}
DOWNLOAD_NEW = "Download a new content token in Apple Business Manager and upload it."


def content_token_banner_text(content_token: ContentToken, now: datetime) -> tuple[str, str]:
    """The banner's words for a content token in trouble, one wording per state."""
    name, state = content_token.name, content_token.state
    if state == CTState.REVOKED:
        return (
            f"Apple has revoked the content token of “{name}”: its apps and books can no "
            f"longer be assigned. {DOWNLOAD_NEW}",
            "Upload a new token",
        )
    if state == CTState.INVALID:
        return (
            f"Apple no longer accepts the content token of “{name}”. {DOWNLOAD_NEW}",
            "Upload a new token",
        )
    if state == CTState.EXPIRED:
        return (
            f"The content token of “{name}” expired on {content_token.expires_at:%-d %b %Y}: "
            f"its apps and books can no longer be assigned. {DOWNLOAD_NEW}",
            "Renew now",
        )
    if state == CTState.ANOTHER_MDM:
        return (
            f"Another MDM{f' (“{content_token.mdm_name}”)' if content_token.mdm_name else ''} "
            f"now manages the Apps and Books location “{name}”.",
            "See what to do",
        )
    return (
        f"The content token of “{name}” expires {_when(content_token.days_left(now))} "
        f"({content_token.expires_at:%-d %b %Y}).",
        "Renew the token",
    )


def _content_token_banner_problems(now: datetime) -> tuple[list[BannerProblem], int]:
    fields = ("id", "location_name", "state", "expires_at", "mdm_name")
    tokens = list(_ranked(ContentToken.objects.only(*fields), _CT_RANKS, "expires_at"))
    problems = []
    for content_token in tokens:
        text, action = content_token_banner_text(content_token, now)
        edit_url = reverse("dep_accounts:content_token_edit", args=[content_token.pk])
        item = {
            "level": LEVELS.get(content_token.urgency, "warning"),
            "text": text,
            "action": action,
            "url": edit_url + "#upload-token",
            "view_url": content_token.get_absolute_url(),
        }
        problems.append(BannerProblem(content_token.urgency, content_token.expires_at, item))
    return problems, tokens[0].problems_total if tokens else 0


def _content_token_reminders_due(now: datetime, horizon: datetime) -> list[ReminderDue]:
    tokens = ContentToken.objects.filter(expires_at__lte=horizon, expires_at__gte=now - DAY)
    return [
        ReminderDue(
            row=content_token_row(content_token, now=now),
            version=f"{content_token.pk}:{content_token.fingerprint}",
            contacts=content_token.notification_email_list,
            renew_steps=(
                "When it expires, apps and books of this location can no longer be assigned "
                "to devices.\n\nTo renew it:\n"
                f"1. Sign in to Apple Business Manager"
                f"{f' as {content_token.apple_id}' if content_token.apple_id else ''}.\n"
                "2. Open Preferences > Payments and Billing > Apps and Books and download the "
                f"content token of “{content_token.name}”.\n"
                "3. Open {edit_url} , choose the downloaded .vpptoken file under Upload Token "
                "and click Save.\n"
            ),
            audit_subject={"content_token": content_token},
        )
        for content_token in tokens
    ]


# The APNs push certificate: its rows and banner line come from services.push.expiry, and it
# sends its reminders itself (push.reminders, in the hourly task).


def _apns_rows(now: datetime) -> list[CredentialRow]:
    return [CredentialRow(**vars(row)) for row in push_expiry.apns_credential_rows()]


_APNS_RANKS = {
    push_expiry.State.EXPIRED: EXPIRED,
    push_expiry.State.CRITICAL: CRITICAL,
    push_expiry.State.WARNING: WARNING,
}


def _apns_banner_problems(now: datetime) -> tuple[list[BannerProblem], int]:
    items = push_expiry.apns_banner_items(now=now)
    push = push_expiry.push_certificate_issued() if items else None
    if push is None:
        return [], 0
    state, _detail = push_expiry.push_state_for(expires_at=push.expires_at, now=now)
    return [BannerProblem(_APNS_RANKS[state], push.expires_at, item) for item in items], len(items)


CREDENTIAL_KINDS: tuple[CredentialKind, ...] = (
    CredentialKind(
        kind="dep_account",
        label="DEP server token",
        plural="DEP accounts",
        list_url_name="dep_accounts:list",
        rows=_dep_rows,
        banner_problems=_dep_banner_problems,
    ),
    CredentialKind(
        kind="content_token",
        label="Apps and Books content token",
        plural="content tokens",
        list_url_name="dep_accounts:content_tokens",
        rows=_content_token_rows,
        banner_problems=_content_token_banner_problems,
        reminders_due=_content_token_reminders_due,
    ),
    CredentialKind(
        kind=push_expiry.KIND,
        label=push_expiry.KIND_LABEL,
        plural="push certificates",
        list_url_name="dep_accounts:push",
        rows=_apns_rows,
        banner_problems=_apns_banner_problems,
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
