"""Emails to admins and contacts, each account's on its own: one failure stops no other.

Every email goes out through `notification_mail_send`, whose subject is always one line. The
scheduled tasks that notify many accounts run each account's notifications inside
`account_notifications_isolated`: a failure there is logged and audited against that account,
and the task goes on with the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.mail import send_mail

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.plain_text import subject_line
from dep_accounts.services.audit import audit_record

logger = logging.getLogger(__name__)


def notification_mail_send(*, subject: str, body: str, recipients: list[str]) -> None:
    """Send one email; its subject is flattened to one line whatever names it holds."""
    send_mail(subject_line(subject), body, settings.DEFAULT_FROM_EMAIL, recipients)


@contextmanager
def account_notifications_isolated(*, account: DEPAccount, what: str) -> Iterator[None]:
    """Run one account's notifications; a failure is logged and audited, and not raised."""
    try:
        yield
    except Exception as exc:
        logger.exception("The %s of DEP account %s failed", what, account.pk)
        audit_record(
            action=AuditEvent.Action.REMINDER_SENT,
            outcome=AuditEvent.Outcome.FAILURE,
            message=f"The {what} of “{account.name}” could not be sent "
            f"({type(exc).__name__}: {exc}). It is tried again at the next run.",
            account=account,
        )
