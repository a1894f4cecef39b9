"""The audit log: who did what to which DEP account, and whether it worked."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.users import User


def actor_user(actor: User | AnonymousUser | None) -> User | None:
    """The user to store as who did something: nobody for the system or an anonymous caller."""
    return actor if actor is not None and actor.is_authenticated else None


def audit_record(
    *,
    action: str,
    message: str,
    actor: User | AnonymousUser | None = None,
    account: DEPAccount | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    details: dict | None = None,
) -> AuditEvent:
    """Record one event; the actor's name is kept even if the user is deleted later."""
    user = actor_user(actor)
    return AuditEvent.objects.create(
        action=action,
        message=message[:1000],
        actor=user,
        actor_name=user.get_username() if user else "",
        account=account if account is not None and account.pk else None,
        outcome=outcome,
        details=details or {},
    )
