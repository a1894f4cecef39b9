"""Whether and how the portal may ask Apple for an account: the sync blocker, and a DEP web
service client for a server token, as stored or as just decrypted."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import DEPAccount, ServerToken
from dep_accounts.selectors import licence_current
from dep_accounts.services.licence import licence_is_valid


@sensitive_variables()
def dep_client_for_token(token: apple_token.ServerTokenCredentials) -> apple_client.DEPClient:
    """The client that speaks to Apple (or applesim, at `DEP_API_URL`) with this token."""
    return apple_client.DEPClient(
        consumer_key=token.consumer_key,
        consumer_secret=token.consumer_secret,
        access_token=token.access_token,
        access_secret=token.access_secret,
        base_url=settings.DEP_API_URL,
        timeout=(5, settings.DEP_API_TIMEOUT_SECONDS),
    )


@sensitive_variables()
def server_token_credentials(server_token: ServerToken) -> apple_token.ServerTokenCredentials:
    """The decrypted OAuth credentials of a stored server token."""
    return apple_token.ServerTokenCredentials.from_json(
        secret_decrypt(server_token.secrets_encrypted).decode()
    )


def licence_blocker(*, now: datetime | None = None) -> str:
    """Why no account can be synced now because of the subscription licence, or ""."""
    licence = licence_current()
    if licence is None:
        return "No subscription licence is installed: upload one on the Subscription page first."
    if licence.is_expired(now or timezone.now()):
        return (
            f"The subscription licence expired on {licence.valid_until:%-d %b %Y}: "
            "renew the subscription first."
        )
    if licence.valid_from > (now or timezone.now()):
        return (
            f"The subscription licence starts on {licence.valid_from:%-d %b %Y}: DEP accounts "
            "sync from that day. Upload a licence valid today on the Subscription page."
        )
    if not licence_is_valid(licence):
        return (
            "The installed subscription licence does not match its signature: upload the "
            "licence file your vendor sent on the Subscription page."
        )
    return ""


def sync_blocker(
    *, account: DEPAccount, now: datetime | None = None, licence_problem: str | None = None
) -> str:
    """Why the account cannot be synced now, or "" if it can.

    A page that asks for many accounts passes `licence_blocker()` once as `licence_problem`.
    """
    if licence_problem is None:
        licence_problem = licence_blocker(now=now)
    if licence_problem:
        return licence_problem
    # Only a sync can find out that the terms have been accepted since.
    if not account.token_is_usable and account.state != DEPAccount.State.TERMS_NOT_ACCEPTED:
        return account.state_detail or f"The server token is {account.get_state_display().lower()}."
    return ""
