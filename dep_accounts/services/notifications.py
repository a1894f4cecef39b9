"""Each account's notifications on their own: one failure stops no other account's.

The scheduled tasks that notify many accounts run each account's part inside
`account_notifications_isolated`: a failure there is logged and audited against that account,
and the task goes on with the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.services.audit import audit_record

logger = logging.getLogger(__name__)


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
            message=f"The {what} of “{account.name}” failed ({type(exc).__name__}). It is "
            "tried again at the next run.",
            account=account,
        )
