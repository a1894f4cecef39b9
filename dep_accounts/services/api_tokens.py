"""API tokens: a user's keys to the JSON API. Only a key's SHA-256 is stored; the key is shown once.

A key is looked up by its hash, so no comparison ever runs over the key itself, and a database
leak yields no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.models import APIToken, AuditEvent
from dep_accounts.services.audit import audit_record
from dep_accounts.users import User

KEY_SCHEME = "mdmp_"
# 30 random bytes: 40 URL-safe characters after the scheme.
KEY_RANDOM_BYTES = 30
PREFIX_LENGTH = 12
# Writing last_used_at on every request would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class APITokenCreated:
    """A new API token and its key: the only time the key exists outside its owner's hands."""

    api_token: APIToken
    key: str


@sensitive_variables("key")
def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@sensitive_variables("key")
def api_token_create(
    *, user: User, name: str, expires_at: datetime | None = None
) -> APITokenCreated:
    """A new API token for `user`; the returned key is never stored and cannot be shown again."""
    key = KEY_SCHEME + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    api_token = APIToken.objects.create(
        user=user,
        name=name,
        key_prefix=key[:PREFIX_LENGTH],
        key_hash=_key_hash(key),
        expires_at=expires_at,
    )
    until = f", valid until {expires_at:%Y-%m-%d %H:%M %Z}" if expires_at else ""
    audit_record(
        action=AuditEvent.Action.API_TOKEN_CHANGED,
        message=f"API token “{name}” ({api_token.key_prefix}…) created for "
        f"{user.get_username()}{until}.",
        actor=user,
        details={"api_token": api_token.key_prefix},
    )
    return APITokenCreated(api_token=api_token, key=key)


def api_token_revoke(*, api_token: APIToken, actor: User) -> APIToken:
    """Revoke an API token for good; revoking it again changes nothing."""
    if api_token.revoked_at is not None:
        return api_token
    api_token.revoked_at = timezone.now()
    api_token.save(update_fields=["revoked_at"])
    audit_record(
        action=AuditEvent.Action.API_TOKEN_CHANGED,
        message=f"API token “{api_token.name}” ({api_token.key_prefix}…) revoked.",
        actor=actor,
        details={"api_token": api_token.key_prefix},
    )
    return api_token


@sensitive_variables("key")
def api_token_authenticate(*, key: str) -> APIToken | None:
    """The live (not revoked, not expired) API token of an active user whose key this is."""
    if not key.startswith(KEY_SCHEME):
        return None
    key_hash = _key_hash(key)
    api_token = (
        APIToken.objects.select_related("user")
        .filter(key_hash=key_hash, revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if api_token is None or not hmac.compare_digest(api_token.key_hash, key_hash):
        return None
    now = timezone.now()
    if api_token.is_expired(now):
        return None
    if api_token.last_used_at is None or api_token.last_used_at <= now - LAST_USED_RESOLUTION:
        APIToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        api_token.last_used_at = now
    return api_token
