"""A DEP web service client for a server token, as stored or as just decrypted."""

from __future__ import annotations

from django.conf import settings

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import ServerToken


def dep_client_for_token(token: apple_token.ServerToken) -> apple_client.DEPClient:
    """The client that speaks to Apple (or applesim, at `DEP_API_URL`) with this token."""
    return apple_client.DEPClient(
        consumer_key=token.consumer_key,
        consumer_secret=token.consumer_secret,
        access_token=token.access_token,
        access_secret=token.access_secret,
        base_url=settings.DEP_API_URL,
        timeout=(5, settings.DEP_API_TIMEOUT_SECONDS),
    )


def server_token_credentials(server_token: ServerToken) -> apple_token.ServerToken:
    """The decrypted OAuth credentials of a stored server token."""
    return apple_token.ServerToken.from_json(
        secret_decrypt(server_token.secrets_encrypted).decode()
    )
