"""The shapes every kind of Apple credential gives the registry (`services.credentials`), and
the one urgency scale their banner lines are ranked on. Models only, no services."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Value, When, Window

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
    expires_at: datetime
    version: str
    contacts: list[str]
    renew_steps: str
    audit_subject: dict[str, Any]


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


def when_text(days: int) -> str:
    return "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"


def ranked_problems(rows, ranks: Mapping[str, int], expiry_field: str):
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
