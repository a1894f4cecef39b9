"""The calendar feed: one event per DEP server token and Apps and Books content token expiry,
with alarms 30 and 7 days ahead.

Each user who may see DEP accounts can subscribe at a secret URL, so a calendar app needs no
sign-in. Only the secret's SHA-256 is stored: it is shown once, and replacing it revokes the
old URL.

The feed is written here, to RFC 5545: TEXT values escaped (3.3.11), lines folded at 75 octets
without splitting a UTF-8 character (3.1), CRLF line ends. icalendar wrote it before, at about
0.5 ms per account (0.5 s for 1,000): its objects cost more than the text. The tests read the
feed back with icalendar's parser.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.links import portal_url
from dep_accounts.models import CalendarFeed, ContentToken, DEPAccount, ServerToken
from dep_accounts.roles import can_view
from dep_accounts.users import User

ALARM_DAYS = (30, 7)


@sensitive_variables("secret")
def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@sensitive_variables("secret")
def calendar_feed_url(secret: str) -> str:
    path = reverse("dep_accounts:calendar_feed", args=[secret])
    return portal_url(path)


@sensitive_variables("secret")
def calendar_feed_replace(*, user: User) -> str:
    """A new secret for the user's feed, returned here and never again; the old URL stops."""
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        CalendarFeed.objects.filter(user_id=user.pk).delete()
        CalendarFeed.objects.create(user_id=user.pk, secret_hash=_secret_hash(secret))
    return secret


@sensitive_variables("secret")
def calendar_feed_owner(*, secret: str) -> User | None:
    """The active user who may see DEP accounts and owns the feed with this secret, if any."""
    feed = (
        CalendarFeed.objects.select_related("user")
        .filter(secret_hash=_secret_hash(secret), user__is_active=True)
        .first()
    )
    if feed is None or not can_view(feed.user):
        return None
    return feed.user


@dataclass(frozen=True)
class _Expiry:
    """What one event needs: a current token and its account, read without models."""

    account_id: int
    token_id: int
    expires_at: datetime
    name: str
    server_name: str
    org_name: str
    admin_apple_id: str


def _renewal_steps(expiry: _Expiry, edit_url: str) -> str:
    apple_id = expiry.admin_apple_id or "the Apple ID that manages this server"
    return (
        f"The Apple DEP server token of “{expiry.name}” (MDM server “{expiry.server_name}”, "
        f"{expiry.org_name}) expires on {expiry.expires_at:%A %d %B %Y at %H:%M} UTC. Once it "
        "has expired, devices of this server no longer sync and new devices do not enroll "
        "automatically.\n\n"
        "To renew it:\n"
        f"1. Sign in to Apple Business Manager as {apple_id}.\n"
        f"2. Open Devices > Management Services > “{expiry.server_name}” and click "
        "Download Token, then confirm.\n"
        f"3. Open {edit_url} (Edit DEP Account), choose the downloaded .p7m file under "
        "Upload Token and click Save.\n"
    )


def _text(value: str) -> str:
    """An RFC 5545 TEXT value (3.3.11): backslash, semicolon, comma and newline escaped."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _utc(moment: datetime) -> str:
    """An RFC 5545 DATE-TIME in UTC (3.3.5, form #2)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _folded(line: str) -> str:
    """A content line folded at 75 octets of UTF-8 (RFC 5545 3.1); the fixed lines never are."""
    octets = line.encode()
    if len(octets) <= 75:
        return line
    parts, start, width = [], 0, 75
    while len(octets) - start > width:
        end = start + width
        # Never inside a UTF-8 sequence: step back over its continuation bytes.
        while octets[end] & 0xC0 == 0x80:
            end -= 1
        parts.append(octets[start:end].decode())
        # A folded line starts with a space, which leaves 74 octets of content.
        start, width = end, 74
    parts.append(octets[start:].decode())
    return "\r\n ".join(parts)


def _event(
    *, uid: str, expires_at: datetime, summary: str, description: str, url: str, alarm: str,
    stamp: str,
) -> list[str]:  # fmt: skip
    """One VEVENT at the expiry, with its renewal steps and an alarm ALARM_DAYS ahead."""
    lines = [
        "BEGIN:VEVENT",
        _folded(f"UID:{uid}"),
        f"DTSTAMP:{stamp}",
        f"DTSTART:{_utc(expires_at)}",
        f"DTEND:{_utc(expires_at + timedelta(minutes=30))}",
        _folded(f"SUMMARY:{_text(summary)}"),
        _folded(f"DESCRIPTION:{_text(description)}"),
        _folded(f"URL:{url}"),
    ]
    for days in ALARM_DAYS:
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            _folded(f"DESCRIPTION:{_text(alarm.format(days=days))}"),
            f"TRIGGER:-P{days}D",
            "END:VALARM",
        ]
    lines.append("END:VEVENT")
    return lines


def _token_event(expiry: _Expiry, *, host: str, stamp: str, edit_url: str) -> list[str]:
    return _event(
        # A renewed token is another event: the old one disappears from the feed.
        uid=f"dep-token-{expiry.account_id}-{expiry.token_id}@{host}",
        expires_at=expiry.expires_at,
        summary=f"DEP server token of {expiry.name} expires",
        description=_renewal_steps(expiry, edit_url),
        url=edit_url,
        alarm=f"The DEP server token of {expiry.name} expires in {{days}} days",
        stamp=stamp,
    )


def _content_token_event(content_token: ContentToken, *, host: str, stamp: str) -> list[str]:
    edit_url = portal_url(reverse("dep_accounts:content_token_edit", args=[content_token.pk]))
    name = content_token.name
    by = f" as {content_token.apple_id}" if content_token.apple_id else ""
    # A renewed content token is another event: its fingerprint is in the uid.
    version = content_token.fingerprint.removeprefix("SHA256:").replace(":", "")
    return _event(
        uid=f"content-token-{content_token.pk}-{version}@{host}",
        expires_at=content_token.expires_at,
        summary=f"Apps and Books content token of {name} expires",
        description=f"The Apps and Books content token of the location “{name}” "
        f"({content_token.org_name}) expires on "
        f"{content_token.expires_at:%A %d %B %Y at %H:%M} UTC. Once it has expired, its apps "
        "and books can no longer be assigned to devices.\n\n"
        "To renew it:\n"
        f"1. Sign in to Apple Business Manager{by}.\n"
        "2. Open Preferences > Payments and Billing > Apps and Books and download the content "
        f"token of “{name}”.\n"
        f"3. Open {edit_url} (Edit Content Token), choose the downloaded .vpptoken file under "
        "Upload Token and click Save.\n",
        url=edit_url,
        alarm=f"The content token of {name} expires in {{days}} days",
        stamp=stamp,
    )


def calendar_feed_ics(*, now: datetime | None = None) -> bytes:
    """The iCalendar document of every current server token's and content token's expiry."""
    now = now or timezone.now()
    host = urlsplit(settings.PORTAL_BASE_URL).hostname or "mdmportal"
    stamp = _utc(now)
    # One reverse() for every account's Edit page: its path differs only by the id.
    edit_path = reverse("dep_accounts:edit", args=[0])
    edit_prefix, edit_suffix = portal_url(edit_path).rsplit("/0/", 1)
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//mdmportal//DEP server token expiries//EN",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "X-WR-CALNAME:Apple credential expiries",
    ]
    tokens = (
        ServerToken.objects.filter(is_current=True)
        .order_by("access_token_expiry", "id")
        .values_list(
            "account_id", "id", "access_token_expiry", "account__display_name",
            "account__server_name", "account__org_name", "account__admin_apple_id",
        )
    )  # fmt: skip
    for account_id, token_id, expires_at, display_name, server_name, org, apple_id in tokens:
        name = DEPAccount.name_of(display_name, server_name, account_id)
        expiry = _Expiry(account_id, token_id, expires_at, name, server_name, org, apple_id)
        edit_url = f"{edit_prefix}/{account_id}/{edit_suffix}"
        lines += _token_event(expiry, host=host, stamp=stamp, edit_url=edit_url)
    for content_token in ContentToken.objects.defer("credential_encrypted"):
        lines += _content_token_event(content_token, host=host, stamp=stamp)
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()
