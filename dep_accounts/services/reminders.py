"""Renewal reminders by email, 30, 14, 7, 3 and 1 days before a token expires and on the day.

A reminder is claimed by inserting its row (unique per token and step) in the transaction that
sends it: a second worker, a retry or a second beat process finds the row and sends nothing; a
failed send rolls the row back so the next run tries again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import (
    AuditEvent,
    DEPAccount,
    ReminderSent,
    ServerToken,
    calendar_days_until,
)
from dep_accounts.plain_text import subject_line
from dep_accounts.roles import ADMINS
from dep_accounts.services.audit import audit_record
from dep_accounts.services.notifications import (
    account_notifications_isolated,
    notification_mail_send,
)
from dep_accounts.services.webhooks import webhooks_emit_reminder

logger = logging.getLogger(__name__)


def reminder_step(*, expires_at: datetime, now: datetime) -> int | None:
    """The reminder step due now: the smallest threshold at or above the days left."""
    days_left = calendar_days_until(expires_at, now=now)
    if days_left < 0:
        return None
    due = [step for step in settings.DEP_REMINDER_DAYS if step >= days_left]
    return min(due) if due else None


def admin_emails() -> list[str]:
    """Where mail for every admin goes: superusers and the admins group, active, with an email."""
    users = get_user_model().objects.filter(
        Q(is_superuser=True) | Q(groups__name=ADMINS), is_active=True
    )
    return sorted({e for e in users.values_list("email", flat=True) if e})


def _reminder_text(account: DEPAccount, expires_at: datetime, now: datetime) -> tuple[str, str]:
    days_left = calendar_days_until(expires_at, now=now)
    when = "today" if days_left == 0 else f"in {days_left} day{'s' * (days_left != 1)}"
    edit_url = settings.PORTAL_BASE_URL.rstrip("/") + reverse(
        "dep_accounts:edit", args=[account.pk]
    )
    subject = subject_line(f"DEP server token of {account.name} expires {when}")
    apple_id = account.admin_apple_id or "the Apple ID that manages this server"
    body = (
        f"The Apple DEP server token of “{account.name}” (MDM server “{account.server_name}”, "
        f"{account.org_name}) expires {when}, on {expires_at:%A %d %B %Y at %H:%M} UTC.\n"
        "When it expires, devices of this server no longer sync and new devices do not "
        "enroll automatically.\n\n"
        "To renew it:\n"
        f"1. Sign in to Apple Business Manager as {apple_id}.\n"
        f"2. Open Preferences > Your MDM Servers > “{account.server_name}” and click "
        "Download Token, then confirm.\n"
        f"3. Open {edit_url} , choose the downloaded .p7m file under Upload Token and click Save.\n"
    )
    return subject, body


def reminders_send(*, now: datetime | None = None) -> int:
    """Send every reminder that is due and was not sent yet; return how many were sent."""
    now = now or timezone.now()
    horizon = now + timedelta(days=max(settings.DEP_REMINDER_DAYS) + 1)
    tokens = ServerToken.objects.filter(
        is_current=True,
        access_token_expiry__lte=horizon,
        access_token_expiry__gte=now - timedelta(days=1),
    ).select_related("account")
    admins = None
    sent = 0
    for token in tokens:
        step = reminder_step(expires_at=token.access_token_expiry, now=now)
        if step is None or ReminderSent.objects.filter(token=token, days_before=step).exists():
            continue
        if admins is None:
            admins = admin_emails()
        # One account's failure (a name that breaks a header, an unreachable mail server) is
        # audited against it and tried again next hour; the other accounts' reminders go out.
        with account_notifications_isolated(account=token.account, what="renewal reminder"):
            sent += _reminder_send(token=token, step=step, admins=admins, now=now)
    return sent


def _reminder_send(*, token: ServerToken, step: int, admins: list[str], now: datetime) -> int:
    account = token.account
    recipients = sorted(set(account.notification_email_list) | set(admins))
    subject, body = _reminder_text(account, token.access_token_expiry, now)
    # Webhooks hear of the step whether or not the email goes out.
    webhooks_emit_reminder(account=account, token=token, days_before=step, message=subject, now=now)
    try:
        with transaction.atomic():
            ReminderSent.objects.create(account=account, token=token, days_before=step)
            if recipients:
                notification_mail_send(subject=subject, body=body, recipients=recipients)
    except IntegrityError:
        return 0
    audit_record(
        action=AuditEvent.Action.REMINDER_SENT,
        message=f"Renewal reminder ({step} days before expiry) for “{account.name}” "
        + (
            f"sent to {len(recipients)} recipient(s)."
            if recipients
            else "not emailed: no admin or notification contact has an email address."
        ),
        account=account,
    )
    return 1
