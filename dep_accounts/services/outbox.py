"""The outbox: every email the portal sends is a row first, and is sent after commit by a task.

Why: a mail server that hangs or refuses must never hold a transaction open, block the worker
that also runs syncs and the expiry task, or stop the other notifications.

- `emails_queue` records one row per recipient in the caller's transaction (claimed once by a
  unique key, as reminders always were) and queues `email_send` for each after commit.
- `email_send` claims the row by moving it to SENDING in its own committed UPDATE, then talks to
  the mail server with `EMAIL_TIMEOUT` on connect and every read. A 4xx answer, a refused or
  dropped connection or a timeout is retried with backoff; a 5xx answer fails the row with the
  server's answer.
- A worker killed between the server's "250 OK" and the mark leaves the row in SENDING: the
  mail may well have gone out, so `emails_reconcile` marks it UNCERTAIN and never sends it
  again. Nothing is sent twice.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Iterable
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachableError

from dep_accounts.models import AuditEvent, DEPAccount, OutboundEmail
from dep_accounts.services.audit import audit_record
from dep_accounts.services.tokens import banner_refresh

logger = logging.getLogger(__name__)

Status = OutboundEmail.Status
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
)
SUBJECT_MAX = 200
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def subject_line(text: str) -> str:
    """An email subject on one line: control characters and line breaks become single spaces."""
    line = _CONTROL_OR_SPACE.sub(" ", text).strip()
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 1] + "…"


def emails_queue(
    *,
    kind: str,
    notification_key: str,
    recipients: Iterable[str],
    subject: str,
    body: str,
    account: DEPAccount | None = None,
) -> list[OutboundEmail]:
    """Record the notification for each recipient not sent it yet; send them after commit."""
    queued = []
    for recipient in sorted(set(recipients)):
        try:
            with transaction.atomic():
                queued.append(
                    OutboundEmail.objects.create(
                        kind=kind,
                        notification_key=notification_key[:200],
                        account=account,
                        recipient=recipient,
                        subject=subject_line(subject),
                        body=body,
                    )
                )
        except IntegrityError:
            continue
    ids = [email.pk for email in queued]
    if ids:
        transaction.on_commit(lambda: _send_enqueue(ids))
    return queued


def _send_enqueue(email_ids: list[int]) -> None:
    for email_id in email_ids:
        try:
            email_send.delay(email_id)
        except BrokerUnreachableError as exc:
            # Still queued: `emails_send_due` sends it once the broker answers again.
            logger.warning("Email %s not queued: %s", email_id, exc)


@shared_task(name="dep_accounts.outbox.email_send", ignore_result=True)
def email_send(email_id: int) -> None:
    """Send one queued email, if it is due and no other worker holds it."""
    email_deliver(email_id=email_id)


def email_deliver(*, email_id: int, now: datetime | None = None) -> str | None:
    """Claim, send and mark one email; its new status, or None when it was not due."""
    now = now or timezone.now()
    due = Q(status=Status.QUEUED) | Q(status=Status.RETRYING, next_attempt_at__lte=now)
    claimed = OutboundEmail.objects.filter(due, pk=email_id).update(
        status=Status.SENDING, attempt_started_at=now
    )
    if not claimed:
        return None
    email = OutboundEmail.objects.select_related("account").get(pk=email_id)
    email.attempts += 1
    answer, permanent = _smtp_send(email)
    if answer is None:
        email.status, email.sent_at, email.last_answer = Status.SENT, timezone.now(), ""
    elif permanent or email.attempts > len(BACKOFF):
        email.status, email.last_answer = Status.FAILED, answer[:500]
    else:
        email.status, email.last_answer = Status.RETRYING, answer[:500]
        email.next_attempt_at = timezone.now() + BACKOFF[email.attempts - 1]
    email.save(update_fields=["status", "attempts", "sent_at", "last_answer", "next_attempt_at"])
    _outcome_record(email)
    return email.status


def _smtp_send(email: OutboundEmail) -> tuple[str | None, bool]:
    """Hand the email over: (None, _) when the server took it, else (its answer, permanent)."""
    message = EmailMessage(
        subject=email.subject,
        body=email.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.recipient],
        headers={"X-Mdmportal-Email": str(email.pk), "Auto-Submitted": "auto-generated"},
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
    )
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return _answer(code, text), code >= 500
    except smtplib.SMTPNotSupportedError:
        return (
            "The mail server does not offer STARTTLS, which EMAIL_URL asks for: fix EMAIL_URL "
            "or the mail server.",
            True,
        )
    except smtplib.SMTPResponseException as exc:
        return _answer(exc.smtp_code, exc.smtp_error), exc.smtp_code >= 500
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib turns a read that timed out into a disconnection; say which it was.
        if not isinstance(exc.__context__, TimeoutError):
            return f"The mail server closed the connection ({exc or 'no answer'}).", False
        return f"The mail server did not answer within {settings.EMAIL_TIMEOUT} seconds.", False
    except TimeoutError:
        return f"The mail server did not answer within {settings.EMAIL_TIMEOUT} seconds.", False
    except OSError as exc:
        return f"Could not connect to the mail server ({exc.strerror or exc}).", False
    return None, False


def _answer(code: int, text: bytes | str) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return subject_line(f"{code} {text}")


def _outcome_record(email: OutboundEmail) -> None:
    if email.status == Status.RETRYING:
        logger.info("Email %s will be retried: %s", email.pk, email.last_answer)
        return
    sent = email.status == Status.SENT
    audit_record(
        action=AuditEvent.Action.EMAIL_SENT if sent else AuditEvent.Action.EMAIL_FAILED,
        message=f"{email.get_kind_display()} “{email.subject}” "
        + (f"emailed to {email.recipient}." if sent else f"not delivered to {email.recipient}: ")
        + ("" if sent else email.last_answer),
        account=email.account,
        outcome=AuditEvent.Outcome.SUCCESS if sent else AuditEvent.Outcome.FAILURE,
        details={"email": email.pk, "attempts": email.attempts},
    )
    if not sent and email.kind != OutboundEmail.Kind.TEST:
        # The banner says so (`selectors.email_problem`) until an email goes out again.
        banner_refresh()


def emails_reconcile(*, now: datetime | None = None) -> int:
    """Emails whose worker died mid-send: UNCERTAIN, never resent; return how many."""
    now = now or timezone.now()
    # Longer than any send may take: connect, greeting, STARTTLS, AUTH and DATA, each bounded.
    stale = now - timedelta(seconds=6 * settings.EMAIL_TIMEOUT + 60)
    stuck = list(
        OutboundEmail.objects.select_related("account").filter(
            status=Status.SENDING, attempt_started_at__lt=stale
        )
    )
    for email in stuck:
        updated = OutboundEmail.objects.filter(pk=email.pk, status=Status.SENDING).update(
            status=Status.UNCERTAIN,
            last_answer="The worker stopped while sending: the email may have been delivered, "
            "so it is not sent again.",
        )
        if updated:
            email.status = Status.UNCERTAIN
            email.last_answer = "The worker stopped while sending."
            _outcome_record(email)
    return len(stuck)


def emails_send_due(*, now: datetime | None = None) -> int:
    """Reconcile interrupted sends, then queue a send for every email that is due."""
    now = now or timezone.now()
    emails_reconcile(now=now)
    due = Q(status=Status.QUEUED) | Q(status=Status.RETRYING, next_attempt_at__lte=now)
    email_ids = list(OutboundEmail.objects.filter(due).values_list("pk", flat=True)[:500])
    _send_enqueue(email_ids)
    return len(email_ids)


def email_test_queue(*, recipient: str, requested_by: str) -> OutboundEmail | None:
    """A test email to the admin who asked for it, to check EMAIL_URL end to end."""
    now = timezone.now()
    queued = emails_queue(
        kind=OutboundEmail.Kind.TEST,
        notification_key=f"test:{requested_by}:{now.isoformat()}",
        recipients=[recipient],
        subject="mdmportal test email",
        body=f"{requested_by} asked mdmportal for this test email at {now:%Y-%m-%d %H:%M} UTC.\n"
        "Renewal reminders and alarms reach you the same way.\n",
    )
    return queued[0] if queued else None
