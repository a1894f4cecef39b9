"""Apps and Books (VPP) content tokens: the .vpptoken file an admin downloads for a location.

No Django. content_token_decode() turns the file into a ContentToken, or says which other kind
of file it is; vpp_client.py asks Apple about the token. See docs/apple-vpp-apns.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dep_accounts.apple.file_kinds import FILE_KIND_NAMES, FileKind, file_kind_detect

# Apple's files are a few hundred bytes; anything near this bound is not a content token.
CONTENT_TOKEN_MAX_BYTES = 16 * 1024
# The decoded JSON is one flat object of strings.
CONTENT_TOKEN_MAX_DEPTH = 2
CONTENT_TOKEN_FIELDS = ("token", "expDate", "orgName")
DOWNLOAD_AGAIN = (
    "In Apple Business Manager, open Preferences > Payments and Billing > Apps and Books, "
    "download the content token of the location and upload the .vpptoken file it gives you."
)


class ContentTokenError(Exception):
    """A file the portal cannot use as a content token; `message` tells the admin what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ContentTokenTooLargeError(ContentTokenError):
    def __init__(self, *, size: int) -> None:
        self.size = size
        super().__init__(
            f"This file is {size:,} bytes; a content token is well under "
            f"{CONTENT_TOKEN_MAX_BYTES // 1024} KB. {DOWNLOAD_AGAIN}"
        )


class WrongFileKindError(ContentTokenError):
    """The file is another kind of file (`kind`), named in the message."""

    def __init__(self, *, kind: FileKind) -> None:
        self.kind = kind
        advice = {
            FileKind.SERVER_TOKEN: "Upload it on the DEP account instead. ",
            FileKind.PUSH_CERTIFICATE: "Upload it on the APNs certificate page instead. ",
            FileKind.PRIVATE_KEY: "Never upload private keys. ",
            FileKind.ARCHIVE: "If it holds the .vpptoken file, unzip it first. ",
        }.get(kind, "")
        super().__init__(
            f"This file is {FILE_KIND_NAMES[kind]}, not an Apps and Books content token. "
            f"{advice}{DOWNLOAD_AGAIN}"
        )


class ContentTokenDamagedError(ContentTokenError):
    """Base64 of JSON, but not what Apple puts in a content token (`problem` says how)."""

    def __init__(self, *, problem: str) -> None:
        self.problem = problem
        super().__init__(f"This content token {problem}. {DOWNLOAD_AGAIN}")


class ContentTokenExpiredError(ContentTokenError):
    def __init__(self, *, expired_at: datetime) -> None:
        self.expired_at = expired_at = expired_at.astimezone(UTC)
        super().__init__(
            f"This content token expired on {expired_at:%-d %b %Y} at {expired_at:%H:%M} UTC. "
            + DOWNLOAD_AGAIN
        )


@dataclass(frozen=True)
class ContentToken:
    """A decoded .vpptoken; `credential` (the whole file's base64 text) is what Apple takes."""

    credential: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: datetime
    org_name: str

    def __repr__(self) -> str:
        return (
            f"ContentToken(fingerprint={self.fingerprint}, org_name={self.org_name!r}, "
            f"expires_at={self.expires_at.isoformat()})"
        )

    __str__ = __repr__

    @property
    def fingerprint(self) -> str:
        """Tells tokens apart without showing them: "SHA256:" and 4 groups of 4 hex digits."""
        digest = hashlib.sha256(self.credential.encode()).hexdigest()[:16]
        return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 16, 4))

    def days_left(self, *, now: datetime) -> int:
        """Whole days until expiry, rounded down; negative once expired."""
        return (self.expires_at - now).days

    def is_expired(self, *, now: datetime) -> bool:
        return now >= self.expires_at


def content_token_decode(data: bytes) -> ContentToken:
    """The content token in a .vpptoken file (base64 of JSON); expiry unchecked."""
    if len(data) > CONTENT_TOKEN_MAX_BYTES:
        raise ContentTokenTooLargeError(size=len(data))
    credential = b"".join(data.split())
    try:
        decoded = base64.b64decode(credential, validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _not_a_content_token(data) from None
    if not text.lstrip().startswith("{"):
        raise _not_a_content_token(data)
    if _json_depth(text) > CONTENT_TOKEN_MAX_DEPTH:
        raise ContentTokenDamagedError(problem="is JSON nested too deeply to be a content token")
    try:
        fields = json.loads(text)
    except ValueError:
        raise ContentTokenDamagedError(problem="is not valid JSON once decoded") from None
    if not isinstance(fields, dict):
        raise _not_a_content_token(data)
    missing = [name for name in CONTENT_TOKEN_FIELDS if not isinstance(fields.get(name), str)]
    if missing or not fields["token"]:
        raise ContentTokenDamagedError(problem="is missing " + ", ".join(missing or ["token"]))
    return ContentToken(
        credential=credential.decode("ascii"),
        token=fields["token"],
        expires_at=_expiry_parse(fields["expDate"]),
        org_name=fields["orgName"],
    )


def content_token_check_usable(token: ContentToken, *, now: datetime) -> None:
    if token.is_expired(now=now):
        raise ContentTokenExpiredError(expired_at=token.expires_at)


def _not_a_content_token(data: bytes) -> ContentTokenError:
    kind = file_kind_detect(data)
    if kind is FileKind.CONTENT_TOKEN:
        return ContentTokenDamagedError(problem="could not be read")
    return WrongFileKindError(kind=kind)


def _json_depth(text: str) -> int:
    """How deeply arrays and objects nest, counted before parsing so a crafted file costs little."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return deepest


def _expiry_parse(found: str) -> datetime:
    # Apple writes +0000 (no colon) and third parties +02:00; fromisoformat takes both on 3.11.
    try:
        moment = datetime.fromisoformat(found.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        shown = found if len(found) <= 40 else found[:40] + "…"
        raise ContentTokenDamagedError(
            problem=f"has expDate {shown!r}, not a date like 2030-11-08T22:33:22+0000"
        )
    return moment.astimezone(UTC)
