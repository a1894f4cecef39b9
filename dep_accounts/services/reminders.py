"""Renewal reminders by email, 30, 14, 7, 3 and 1 days before a token expires and on the day.

A reminder is claimed by inserting its row (unique per token and step) in the transaction that
queues its emails in the outbox: a second worker, a retry or a second beat process finds the row
and queues nothing. The outbox sends them after commit, each on its own, so a slow or failing
mail server delays no other reminder and no other work. One account's failure is logged and
audited, and the other accounts' reminders still go out.
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
from django.utils.translation import ngettext

from dep_accounts.links import portal_url
from dep_accounts.models import (
    AuditEvent,
    CredentialReminder,
    DEPAccount,
    OutboundEmail,
    ReminderSent,
    ServerToken,
    Webhook,
    calendar_days_until,
)
from dep_accounts.roles import ADMINS
from dep_accounts.selectors import licence_current
from dep_accounts.services.audit import audit_record
from dep_accounts.services.credentials import CREDENTIAL_KINDS, ReminderDue
from dep_accounts.services.outbox import emails_queue
from dep_accounts.services.webhooks import webhooks_emit_credential, webhooks_emit_reminder

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


def _days_left_text(expires_at: datetime, now: datetime) -> str:
    """The days actually left, as reminders name them: a token first seen late is not the
    14-day reminder at 10 days."""
    days_left = calendar_days_until(expires_at, now=now)
    if days_left == 0:
        return "expires today"
    return ngettext("%(days)d day left", "%(days)d days left", days_left) % {"days": days_left}


def _reminder_text(account: DEPAccount, expires_at: datetime, now: datetime) -> tuple[str, str]:
    days_left = calendar_days_until(expires_at, now=now)
    when = "today" if days_left == 0 else f"in {days_left} day{'s' * (days_left != 1)}"
    edit_url = portal_url(reverse("dep_accounts:edit", args=[account.pk]))
    subject = f"DEP server token of {account.name} expires {when}"
    apple_id = account.admin_apple_id or "the Apple ID that manages this server"
    body = (
        f"The Apple DEP server token of “{account.name}” (MDM server “{account.server_name}”, "
        f"{account.org_name}) expires {when}, on {expires_at:%A %d %B %Y at %H:%M} UTC.\n"
        "When it expires, devices of this server no longer sync and new devices do not "
        "enroll automatically.\n\n"
        "To renew it:\n"
        f"1. Sign in to Apple Business Manager as {apple_id}.\n"
        f"2. Open Devices > Management Services > “{account.server_name}” and click "
        "Download Token, then confirm.\n"
        f"3. Open {edit_url} , choose the downloaded .p7m file under Upload Token and click Save.\n"
    )
    return subject, body


def reminders_send(*, now: datetime | None = None) -> int:
    """Send every reminder that is due and was not sent yet; return how many were sent."""
    now = now or timezone.now()
    horizon = now + timedelta(days=max(settings.DEP_REMINDER_DAYS) + 1)
    near_expiry = ServerToken.objects.filter(
        is_current=True,
        access_token_expiry__lte=horizon,
        access_token_expiry__gte=now - timedelta(days=1),
    )
    steps = {}
    for token_id, expires_at in near_expiry.values_list("pk", "access_token_expiry"):
        step = reminder_step(expires_at=expires_at, now=now)
        if step is not None:
            steps[token_id] = step
    # One read for the reminders already sent, however many tokens near their expiry: an hour
    # with nothing new to send costs the same queries at 10,000 accounts as at 100.
    sent_before = set(
        ReminderSent.objects.filter(token__in=near_expiry.values("pk")).values_list(
            "token_id", "days_before"
        )
    )
    due_ids = [pk for pk, step in steps.items() if (pk, step) not in sent_before]
    tokens = near_expiry.filter(pk__in=due_ids).select_related("account").order_by("pk")
    due = [(token, steps[token.pk]) for token in tokens] if due_ids else []
    admins = admin_emails() if due else []
    sent = 0
    for token, step in due:
        try:
            sent += _reminder_queue(token=token, step=step, admins=admins, now=now)
        except Exception as exc:
            # One account's failure (a bad address, a database error) stops only its reminder.
            logger.exception("Renewal reminder for DEP account %s failed", token.account_id)
            audit_record(
                action=AuditEvent.Action.REMINDER_SENT,
                outcome=AuditEvent.Outcome.FAILURE,
                message=f"Renewal reminder for “{token.account.name}” failed: "
                f"{type(exc).__name__}. It is tried again within the hour.",
                account=token.account,
            )
    return sent


def _reminder_queue(*, token: ServerToken, step: int, admins: list[str], now: datetime) -> int:
    account = token.account
    recipients = sorted(set(account.notification_email_list) | set(admins))
    subject, body = _reminder_text(account, token.access_token_expiry, now)
    try:
        with transaction.atomic():
            ReminderSent.objects.create(account=account, token=token, days_before=step)
            emails_queue(
                kind=OutboundEmail.Kind.REMINDER,
                notification_key=f"reminder:{token.pk}:{step}",
                recipients=recipients,
                subject=subject,
                body=body,
                account=account,
            )
    except IntegrityError:
        return 0
    # Webhooks hear of the step whether or not anyone gets the email.
    audit_record(
        action=AuditEvent.Action.REMINDER_SENT,
        message=f"Renewal reminder ({_days_left_text(token.access_token_expiry, now)}) "
        f"for “{account.name}” "
        + (
            ngettext(
                "queued for %(count)d recipient.",
                "queued for %(count)d recipients.",
                len(recipients),
            )
            % {"count": len(recipients)}
            if recipients
            else "not emailed: no admin or notification contact has an email address."
        ),
        account=account,
        details={"days_before": step},
    )
    webhooks_emit_reminder(account=account, token=token, days_before=step, message=subject, now=now)
    return 1


def credential_reminders_send(*, now: datetime | None = None) -> int:
    """The reminders due for credentials of the other kinds (content tokens, ...), once per
    credential version and step, as `reminders_send` does for server tokens."""
    now = now or timezone.now()
    horizon = now + timedelta(days=max(settings.DEP_REMINDER_DAYS) + 1)
    admins = None
    sent = 0
    for kind in CREDENTIAL_KINDS:
        for due in kind.reminders_due(now, horizon) if kind.reminders_due else []:
            step = reminder_step(expires_at=due.expires_at, now=now)
            if (
                step is None
                or CredentialReminder.objects.filter(
                    kind=due.row.kind, version=due.version, days_before=step
                ).exists()
            ):
                continue
            if admins is None:
                admins = admin_emails()
            try:
                sent += _credential_reminder_queue(due=due, step=step, admins=admins, now=now)
            except Exception as exc:
                logger.exception("Renewal reminder for %s %s failed", due.row.kind, due.version)
                audit_record(
                    action=AuditEvent.Action.REMINDER_SENT,
                    outcome=AuditEvent.Outcome.FAILURE,
                    message=f"Renewal reminder for “{due.row.name}” failed: "
                    f"{type(exc).__name__}. It is tried again within the hour.",
                    **due.audit_subject,
                )
    return sent


def _credential_reminder_queue(
    *, due: ReminderDue, step: int, admins: list[str], now: datetime
) -> int:
    row = due.row
    recipients = sorted(set(due.contacts) | set(admins))
    days_left = calendar_days_until(due.expires_at, now=now)
    when = "today" if days_left == 0 else f"in {days_left} day{'s' * (days_left != 1)}"
    subject = f"{row.kind_label} of {row.name} expires {when}"
    body = (
        f"The {row.kind_label} of “{row.name}” expires {when}, on "
        f"{due.expires_at:%A %d %B %Y at %H:%M} UTC.\n"
        + due.renew_steps.replace("{edit_url}", portal_url(row.edit_url))
    )
    try:
        with transaction.atomic():
            CredentialReminder.objects.create(kind=row.kind, version=due.version, days_before=step)
            emails_queue(
                kind=OutboundEmail.Kind.REMINDER,
                notification_key=f"reminder:{row.kind}:{due.version}:{step}",
                recipients=recipients,
                subject=subject,
                body=body,
            )
    except IntegrityError:
        return 0
    audit_record(
        action=AuditEvent.Action.REMINDER_SENT,
        message=f"Renewal reminder ({_days_left_text(due.expires_at, now)}) for “{row.name}” "
        + (
            ngettext(
                "queued for %(count)d recipient.",
                "queued for %(count)d recipients.",
                len(recipients),
            )
            % {"count": len(recipients)}
            if recipients
            else "not emailed: no admin or notification contact has an email address."
        ),
        details={"days_before": step, "kind": row.kind},
        **due.audit_subject,
    )
    event = Webhook.Event.REMINDER
    webhooks_emit_credential(
        event=event,
        event_key=f"{event}:{row.kind}:{due.version}:{step}",
        row=row,
        message=subject,
        now=now,
        extra={"reminder_days_before": step},
    )
    return 1


def licence_reminders_send(*, now: datetime | None = None) -> int:
    """Email the admins, at most once a week, while the subscription licence nears its end."""
    now = now or timezone.now()
    licence = licence_current()
    warning = now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS)
    if licence is None or not now < licence.valid_until <= warning:
        return 0
    year, week, _ = timezone.localdate(now).isocalendar()
    days_left = calendar_days_until(licence.valid_until, now=now)
    when = "today" if days_left == 0 else f"in {days_left} day{'s' * (days_left != 1)}"
    subscription_url = portal_url(reverse("dep_accounts:subscription"))
    queued = emails_queue(
        kind=OutboundEmail.Kind.LICENCE,
        notification_key=f"licence:{licence.licence_id}:{year}-W{week:02d}",
        recipients=admin_emails(),
        subject=f"The mdmportal subscription licence of {licence.customer} expires {when}",
        body=f"The {licence.plan} subscription licence of {licence.customer} expires {when}, on "
        f"{licence.valid_until:%A %d %B %Y}. After that, DEP accounts cannot be synced until it "
        "is renewed.\n\n"
        f"Upload the renewed licence at {subscription_url} .\n",
    )
    return len(queued)
