"""The calendar feed: one event per DEP server token expiry, with alarms 30 and 7 days ahead.

Each user who may see DEP accounts can subscribe at a secret URL, so a calendar app needs no
sign-in. Only the secret's SHA-256 is stored: it is shown once, and replacing it revokes the
old URL. icalendar writes the format (escaping, 75-octet line folding, CRLF).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from icalendar import Alarm, Calendar, Event

from dep_accounts.links import portal_url
from dep_accounts.models import CalendarFeed, DEPAccount, ServerToken
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


def _renewal_steps(account: DEPAccount, expires_at: datetime) -> str:
    edit_url = portal_url(reverse("dep_accounts:edit", args=[account.pk]))
    apple_id = account.admin_apple_id or "the Apple ID that manages this server"
    return (
        f"The Apple DEP server token of “{account.name}” (MDM server “{account.server_name}”, "
        f"{account.org_name}) expires on {expires_at:%A %d %B %Y at %H:%M} UTC. Once it has "
        "expired, devices of this server no longer sync and new devices do not enroll "
        "automatically.\n\n"
        "To renew it:\n"
        f"1. Sign in to Apple Business Manager as {apple_id}.\n"
        f"2. Open Devices > Management Services > “{account.server_name}” and click "
        "Download Token, then confirm.\n"
        f"3. Open {edit_url} (Edit DEP Account), choose the downloaded .p7m file under "
        "Upload Token and click Save.\n"
    )


def _token_event(token: ServerToken, *, host: str, now: datetime) -> Event:
    account = token.account
    event = Event()
    # A renewed token is another event: the old one disappears from the feed.
    event.add("uid", f"dep-token-{account.pk}-{token.pk}@{host}")
    event.add("dtstamp", now)
    event.add("dtstart", token.access_token_expiry)
    event.add("dtend", token.access_token_expiry + timedelta(minutes=30))
    event.add("summary", f"DEP server token of {account.name} expires")
    event.add("description", _renewal_steps(account, token.access_token_expiry))
    event.add(
        "url",
        portal_url(reverse("dep_accounts:edit", args=[account.pk])),
    )
    for days in ALARM_DAYS:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", f"The DEP server token of {account.name} expires in {days} days")
        alarm.add("trigger", timedelta(days=-days))
        event.add_component(alarm)
    return event


def calendar_feed_ics(*, now: datetime | None = None) -> bytes:
    """The iCalendar document of every DEP account's current server token expiry."""
    now = now or timezone.now()
    host = urlsplit(settings.PORTAL_BASE_URL).hostname or "mdmportal"
    calendar = Calendar()
    calendar.add("prodid", "-//mdmportal//DEP server token expiries//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "DEP server token expiries")
    tokens = (
        ServerToken.objects.filter(is_current=True)
        .select_related("account")
        .order_by("access_token_expiry", "id")
    )
    for token in tokens:
        calendar.add_component(_token_event(token, host=host, now=now))
    return calendar.to_ical()
