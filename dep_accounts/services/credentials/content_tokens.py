"""Apps and Books content tokens as a kind of Apple credential: rows, banner lines, reminders."""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse

from dep_accounts.models import ContentToken
from dep_accounts.services.credentials.base import (
    BLOCKED,
    CRITICAL,
    DAY,
    EXPIRED,
    LEVELS,
    REFUSED,
    WARNING,
    BannerProblem,
    CredentialRow,
    ReminderDue,
    ranked_problems,
    when_text,
)

CTState = ContentToken.State


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


def content_token_rows(now: datetime) -> list[CredentialRow]:
    fields = ("id", "location_name", "state", "expires_at", "apple_id")
    return [content_token_row(c, now=now) for c in ContentToken.objects.only(*fields)]


_CT_RANKS: dict[str, int] = {
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
        f"The content token of “{name}” expires {when_text(content_token.days_left(now))} "
        f"({content_token.expires_at:%-d %b %Y}).",
        "Renew the token",
    )


def content_token_banner_problems(now: datetime) -> tuple[list[BannerProblem], int]:
    fields = ("id", "location_name", "state", "expires_at", "mdm_name")
    tokens = list(ranked_problems(ContentToken.objects.only(*fields), _CT_RANKS, "expires_at"))
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


def content_token_reminders_due(now: datetime, horizon: datetime) -> list[ReminderDue]:
    tokens = ContentToken.objects.filter(expires_at__lte=horizon, expires_at__gte=now - DAY)
    return [
        ReminderDue(
            row=content_token_row(content_token, now=now),
            expires_at=content_token.expires_at,
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
