"""The audit log: who did what to which DEP account, and whether it worked."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from dep_accounts.models import AuditEvent, DEPAccount


def audit_record(
    *,
    action: str,
    message: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    account: DEPAccount | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    details: dict | None = None,
) -> AuditEvent:
    """Record one event; the actor's name is kept even if the user is deleted later."""
    signed_in = actor is not None and actor.is_authenticated
    return AuditEvent.objects.create(
        action=action,
        message=message[:1000],
        actor=actor if signed_in else None,
        actor_name=actor.get_username() if signed_in else "",
        account=account if account is not None and account.pk else None,
        outcome=outcome,
        details=details or {},
    )
