"""The push certificate's expiry: its state, its banner items and its row among Apple's
credentials, in the shapes the DEP accounts' own use.

`apns_credential_rows` and `apns_banner_items` (with `push.reminders.apns_reminders_due`) are
the push certificate's entries for the list of credential kinds; the hourly expiry task calls
`push_state_refresh`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import PushCertificate, calendar_days_until
from dep_accounts.services.expiry_stage import expiry_state_for

State = PushCertificate.State
KIND = "apns"
KIND_LABEL = "APNs push certificate"
PORTAL = "the Apple Push Certificates Portal (https://identity.apple.com/pushcert)"
UPLOAD_ANCHOR = "#upload-certificate"


def push_state_for(*, expires_at: datetime | None, now: datetime) -> tuple[str, str]:
    """The state the certificate's expiry gives, with the reason shown to admins."""
    if expires_at is None:
        return State.AWAITING_CERTIFICATE, "Upload the push certificate from Apple."
    return expiry_state_for(expires_at=expires_at, now=now, what="push certificate")


def push_state_refresh(*, now: datetime | None = None) -> int:
    """Recompute the certificate's state from its expiry; how many rows changed."""
    now = now or timezone.now()
    changed = 0
    for push in PushCertificate.objects.filter(expires_at__isnull=False):
        state, detail = push_state_for(expires_at=push.expires_at, now=now)
        if (state, detail) != (push.state, push.state_detail):
            changed += PushCertificate.objects.filter(pk=push.pk).update(
                state=state, state_detail=detail
            )
    return changed


def push_certificate_issued() -> PushCertificate | None:
    """The push certificate once one was uploaded."""
    return PushCertificate.objects.filter(expires_at__isnull=False).first()


def sign_in_as(push: PushCertificate) -> str:
    return push.apple_id or "the Apple ID that created it"


def apns_banner_items(*, now: datetime) -> list[dict[str, str]]:
    """The push certificate's banner item, if it expires soon or has expired."""
    push = push_certificate_issued()
    if push is None or push.expires_at is None:
        return []
    state, _ = push_state_for(expires_at=push.expires_at, now=now)
    if state == State.EXPIRED:
        text = (
            f"The APNs push certificate expired on {push.expires_at:%-d %b %Y}: devices no longer "
            f"answer. Renew it at {PORTAL} as {sign_in_as(push)} (Renew, not Create) and upload "
            "it."
        )
        level, action = "critical", "Renew now"
    elif state in (State.CRITICAL, State.WARNING):
        days = calendar_days_until(push.expires_at, now=now)
        when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
        text = (
            f"The APNs push certificate expires {when} ({push.expires_at:%-d %b %Y}). Renew it "
            f"as {sign_in_as(push)}: click Renew, not Create."
        )
        level = "critical" if state == State.CRITICAL else "warning"
        action = "Renew the certificate"
    else:
        return []
    return [
        {
            "level": level,
            "text": text,
            "action": action,
            "url": reverse("dep_accounts:push_edit") + UPLOAD_ANCHOR,
            "view_url": reverse("dep_accounts:push"),
        }
    ]


@dataclass(frozen=True)
class PushCredentialRow:
    """The push certificate as one row of the Apple credentials list."""

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


def apns_credential_rows() -> list[PushCredentialRow]:
    """The push certificate, once one was requested, as the credentials list shows it."""
    return [
        PushCredentialRow(
            kind=KIND,
            kind_label=KIND_LABEL,
            name=push.topic or "Awaiting certificate",
            expires_at=push.expires_at,
            days_left=push.days_left(),
            state=push.state,
            state_label=push.get_state_display(),
            apple_id=push.apple_id,
            detail_url=reverse("dep_accounts:push"),
            edit_url=reverse("dep_accounts:push_edit"),
        )
        for push in PushCertificate.objects.all()
    ]
