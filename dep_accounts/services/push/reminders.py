"""Renewal reminders for the push certificate, 30, 14, 7, 3 and 1 days before it expires and
on the day, through the outbox like the DEP tokens' (the same steps, `DEP_REMINDER_DAYS`).

A reminder is claimed by its audit event (one per certificate serial and step), written in the
transaction that queues its emails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from dep_accounts.links import portal_url
from dep_accounts.models import AuditEvent, OutboundEmail, calendar_days_until
from dep_accounts.services.audit import audit_record
from dep_accounts.services.outbox import emails_queue
from dep_accounts.services.push.expiry import PORTAL, push_certificate_issued, sign_in_as
from dep_accounts.services.reminders import admin_emails, reminder_step


@dataclass(frozen=True)
class PushReminder:
    """A renewal reminder due now: once per certificate (serial) and step."""

    days_before: int
    notification_key: str
    subject: str
    body: str


def apns_reminders_due(*, now: datetime) -> list[PushReminder]:
    """The push certificate's reminder due now (30/14/7/3/1/0 days), if not already sent."""
    push = push_certificate_issued()
    if push is None or push.expires_at is None:
        return []
    step = reminder_step(expires_at=push.expires_at, now=now)
    if step is None:
        return []
    key = f"push-reminder:{push.serial_number}:{step}"
    if AuditEvent.objects.filter(
        action=AuditEvent.Action.REMINDER_SENT, details__notification_key=key
    ).exists():
        return []
    days_left = calendar_days_until(push.expires_at, now=now)
    when = "today" if days_left == 0 else f"in {days_left} day{'s' * (days_left != 1)}"
    edit_url = portal_url(reverse("dep_accounts:push_edit"))
    body = (
        f"The APNs push certificate of this MDM (topic {push.topic}) expires {when}, on "
        f"{push.expires_at:%A %d %B %Y at %H:%M} UTC.\n"
        "When it expires, enrolled devices no longer answer the MDM.\n\n"
        "To renew it:\n"
        f"1. Open {edit_url} and download the signed request.\n"
        f"2. Sign in to {PORTAL} as {sign_in_as(push)}.\n"
        f"3. Click Renew on the certificate {push.topic}: not Create a Certificate, which "
        "makes a new topic and leaves every enrolled device unreachable.\n"
        "4. Upload the signed request, download the .pem, and upload it on the page above.\n"
    )
    return [
        PushReminder(
            days_before=step,
            notification_key=key,
            subject=f"APNs push certificate expires {when}",
            body=body,
        )
    ]


def apns_reminders_send(*, now: datetime | None = None) -> int:
    """Queue the push certificate's due reminder for every admin; how many were queued."""
    now = now or timezone.now()
    sent = 0
    for reminder in apns_reminders_due(now=now):
        recipients = admin_emails()
        with transaction.atomic():
            emails_queue(
                kind=OutboundEmail.Kind.REMINDER,
                notification_key=reminder.notification_key,
                recipients=recipients,
                subject=reminder.subject,
                body=reminder.body,
            )
            audit_record(
                action=AuditEvent.Action.REMINDER_SENT,
                message=f"Renewal reminder for the APNs push certificate ({reminder.subject}) "
                + (
                    f"queued for {len(recipients)} recipient{'s' * (len(recipients) != 1)}."
                    if recipients
                    else "not emailed: no admin has an email address."
                ),
                details={
                    "days_before": reminder.days_before,
                    "notification_key": reminder.notification_key,
                },
            )
        sent += 1
    return sent
