"""What a decrypted server token holds, and every way a server token can be unusable.

Pure functions: bytes in, dataclasses out, ServerTokenError subclasses for anything an admin can
fix. The payload is described in docs/apple-dep.md section 1; envelope.py opens the .p7m.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.views.decorators.debug import sensitive_variables

EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SECRET_FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_secret")
PAYLOAD_FIELDS = (*SECRET_FIELDS, "access_token_expiry")
DOWNLOAD_AGAIN = (
    "In Apple Business Manager, open Devices > Management Services, select the server "
    "and click Download Token, then upload the .p7m file it gives you."
)


class ServerTokenError(Exception):
    """A server token the portal cannot use; `message` tells the admin what to do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAServerTokenError(ServerTokenError):
    pass


class WrongRecipientError(ServerTokenError):
    pass


class UnsupportedCipherError(ServerTokenError):
    def __init__(self, *, algorithm: str) -> None:
        self.algorithm = algorithm
        super().__init__(
            f"This server token is encrypted with {algorithm}, which the portal does not accept. "
            "Apple's server tokens use AES-128-CBC, so this file did not come from Apple Business "
            "Manager as-is: download the token again and upload the .p7m file unchanged."
        )


class DamagedTokenError(ServerTokenError):
    pass


class PayloadFieldsMissingError(ServerTokenError):
    def __init__(self, *, missing_fields: tuple[str, ...], reason: str = "") -> None:
        self.missing_fields = missing_fields
        problem = reason or "is missing " + ", ".join(missing_fields)
        super().__init__(
            f"This server token decrypted, but its content {problem}. "
            "Download a new token from Apple Business Manager and upload it here."
        )


class BadExpiryError(ServerTokenError):
    def __init__(self, *, found: object) -> None:
        shown = str(found).replace("\n", " ")
        self.found = shown if len(shown) <= 40 else shown[:40] + "…"
        super().__init__(
            f"This server token's access_token_expiry is {self.found!r}, not a UTC date like "
            "2026-01-17T11:02:21Z. Download a new token from Apple Business Manager and upload it."
        )


class TokenExpiredError(ServerTokenError):
    def __init__(self, *, expired_at: datetime) -> None:
        self.expired_at = expired_at = expired_at.astimezone(UTC)
        super().__init__(
            f"This server token expired on {expired_at:%-d %b %Y} at {expired_at:%H:%M} UTC. "
            "In Apple Business Manager, download a new token for this MDM server and upload it."
        )


@dataclass(frozen=True)
class ServerTokenCredentials:
    """The OAuth 1.0a credentials of a decrypted server token."""

    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_secret: str = field(repr=False)
    access_token_expiry: datetime

    def __repr__(self) -> str:
        return (
            f"ServerTokenCredentials(consumer_key={self.consumer_key_fingerprint}, "
            f"access_token_expiry={self.access_token_expiry:{EXPIRY_FORMAT}})"
        )

    __str__ = __repr__

    @property
    def consumer_key_fingerprint(self) -> str:
        """Tells tokens apart without showing the key: "SHA256:" and 4 groups of 4 hex digits."""
        digest = hashlib.sha256(self.consumer_key.encode()).hexdigest()[:16]
        return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 16, 4))

    @sensitive_variables()
    def to_json(self) -> str:
        fields = {name: getattr(self, name) for name in SECRET_FIELDS}
        fields["access_token_expiry"] = (
            f"{self.access_token_expiry.astimezone(UTC):{EXPIRY_FORMAT}}"
        )
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    @sensitive_variables()
    def from_json(cls, text: str) -> ServerTokenCredentials:
        return _server_token_from_fields(_payload_json(text))

    def days_left(self, *, now: datetime) -> int:
        """Whole days until expiry, rounded down; negative once expired."""
        return (self.access_token_expiry - now).days

    def is_expired(self, *, now: datetime) -> bool:
        return now >= self.access_token_expiry


def server_token_check_usable(token: ServerTokenCredentials, *, now: datetime) -> None:
    if token.is_expired(now=now):
        raise TokenExpiredError(expired_at=token.access_token_expiry)


def _payload_unreadable(reason: str) -> PayloadFieldsMissingError:
    return PayloadFieldsMissingError(missing_fields=PAYLOAD_FIELDS, reason=reason)


@sensitive_variables()
def server_token_from_plaintext(plaintext: bytes) -> ServerTokenCredentials:
    """The credentials in what an opened .p7m holds: a MIME part around Apple's JSON."""
    lines = [line.strip() for line in plaintext.decode("utf-8", errors="replace").splitlines()]
    begin = lines.index("-----BEGIN MESSAGE-----") if "-----BEGIN MESSAGE-----" in lines else -1
    end = lines.index("-----END MESSAGE-----") if "-----END MESSAGE-----" in lines else -1
    if not 0 <= begin < end:
        raise _payload_unreadable("has no -----BEGIN MESSAGE----- ... -----END MESSAGE----- block")
    # Lines before BEGIN are the inner text/plain MIME header; Apple may wrap the JSON anywhere.
    return _server_token_from_fields(_payload_json("".join(lines[begin + 1 : end])))


@sensitive_variables()
def _payload_json(text: str) -> object:
    try:
        return json.loads(text)
    except RecursionError as error:
        # Apple's payload is one flat object; thousands of nested brackets are a crafted file.
        raise _payload_unreadable("is JSON nested too deeply to be a server token") from error
    except ValueError as error:
        raise _payload_unreadable("is not valid JSON") from error


@sensitive_variables()
def _server_token_from_fields(fields: object) -> ServerTokenCredentials:
    if not isinstance(fields, dict):
        fields = {}
    missing = tuple(
        name
        for name in PAYLOAD_FIELDS
        if not fields.get(name) or (name in SECRET_FIELDS and not isinstance(fields[name], str))
    )
    if missing:
        raise PayloadFieldsMissingError(missing_fields=missing)
    found = fields["access_token_expiry"]
    if not isinstance(found, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", found):
        raise BadExpiryError(found=found)
    try:
        expiry = datetime.strptime(found, EXPIRY_FORMAT).replace(tzinfo=UTC)
    except ValueError as error:
        raise BadExpiryError(found=found) from error
    return ServerTokenCredentials(
        **{name: fields[name] for name in SECRET_FIELDS}, access_token_expiry=expiry
    )
