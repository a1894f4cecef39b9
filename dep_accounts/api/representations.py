"""What the API and `manage.py dep_account --json` print for an account or an audit event.

Plain dicts of public values: no secret of a server token or key pair ever enters them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from django.urls import reverse

from dep_accounts.models import AuditEvent, DEPAccount, ServerToken

# Turns a path of the portal into the absolute URL a script can follow.
Absolute = Callable[[str], str]


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def account_representation(account: DEPAccount, *, absolute: Absolute) -> dict:
    """An account as listed: expiry, state, last sync, and where to see or renew it."""
    return {
        "id": account.pk,
        "name": account.name,
        "server_name": account.server_name,
        "server_uuid": account.server_uuid,
        "org_name": account.org_name,
        "admin_apple_id": account.admin_apple_id,
        "state": account.state,
        "state_detail": account.state_detail,
        "token_expires_at": rfc3339(account.token_expires_at),
        "days_left": account.days_left(),
        "last_sync_at": rfc3339(account.last_sync_at),
        "last_sync_result": account.last_sync_result,
        "device_count": account.device_count,
        "links": {
            "self": absolute(reverse("api:dep_account", args=[account.pk])),
            "public_key": absolute(reverse("api:dep_account_public_key", args=[account.pk])),
            "token": absolute(reverse("api:dep_account_token", args=[account.pk])),
            "console": absolute(reverse("dep_accounts:detail", args=[account.pk])),
            "console_edit": absolute(reverse("dep_accounts:edit", args=[account.pk])),
        },
    }


def server_token_representation(server_token: ServerToken) -> dict:
    return {
        "uploaded_at": rfc3339(server_token.uploaded_at),
        "uploaded_by": server_token.uploaded_by.get_username()
        if server_token.uploaded_by
        else None,
        "admin_apple_id": server_token.admin_apple_id,
        "access_token_expiry": rfc3339(server_token.access_token_expiry),
        "consumer_key_fingerprint": server_token.consumer_key_fingerprint,
        "is_current": server_token.is_current,
    }


def account_detail_representation(account: DEPAccount, *, absolute: Absolute) -> dict:
    """An account with the history of its server tokens, newest first."""
    history = (
        account.server_tokens.select_related("uploaded_by")
        .only(
            "uploaded_at",
            "uploaded_by__username",
            "admin_apple_id",
            "access_token_expiry",
            "consumer_key_fingerprint",
            "is_current",
        )
        .order_by("-uploaded_at", "-id")
    )
    return {
        **account_representation(account, absolute=absolute),
        "token_history": [server_token_representation(t) for t in history],
    }


def audit_event_representation(event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "at": rfc3339(event.at),
        # No actor: the portal itself (a scheduled task, a command without --user).
        "actor": event.actor_name or None,
        "account_id": event.account_id,
        "account_name": event.account.name if event.account_id else None,
        "action": event.action,
        "action_label": event.get_action_display(),
        "outcome": event.outcome,
        "message": event.message,
        "details": event.details,
    }
