"""The calendar feed, read the way a calendar app reads it: by its secret URL, with no sign-in,
through an iCalendar parser."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from icalendar import Calendar

from dep_accounts.models import CalendarFeed, DEPAccount
from dep_accounts.roles import VIEWERS
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.intake import TokenFile, token_intake

pytestmark = pytest.mark.django_db


def _feed_url(client: Client) -> str:
    """Create or replace the signed-in user's feed; the address the page shows once."""
    response = client.post(reverse("dep_accounts:calendar"))
    assert response.status_code == 200
    feed_url = response.context["feed_url"]
    assert feed_url in response.content.decode()
    return feed_url


def _subscribe(feed_url: str) -> Calendar:
    """What a calendar app gets from the address, without any session."""
    response = Client().get(urlsplit(feed_url).path)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.content)


def test_a_viewer_subscribes_to_every_token_expiry_with_its_renewal_steps(
    client_as, viewer, dep_account
):
    feed_url = _feed_url(client_as(viewer))
    assert feed_url.startswith(settings.PORTAL_BASE_URL.rstrip("/") + "/calendar/")

    calendar = _subscribe(feed_url)

    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == dep_account.token_expires_at
    assert str(event["summary"]) == f"DEP server token of {dep_account.name} expires"
    description = str(event["description"])
    edit_url = settings.PORTAL_BASE_URL.rstrip("/") + reverse(
        "dep_accounts:edit", args=[dep_account.pk]
    )
    assert edit_url in description
    assert "Sign in to Apple Business Manager as it.admin@springfield.example" in description
    assert "Download Token" in description and "Upload Token" in description
    triggers = sorted(alarm.decoded("trigger") for alarm in event.walk("VALARM"))
    assert triggers == [timedelta(days=-30), timedelta(days=-7)]
    assert {str(alarm["action"]) for alarm in event.walk("VALARM")} == {"DISPLAY"}


def test_the_event_uid_stays_until_the_token_is_renewed(abm, client_as, admin, dep_account):
    feed_url = _feed_url(client_as(admin))
    first = str(_subscribe(feed_url).walk("VEVENT")[0]["uid"])
    assert str(_subscribe(feed_url).walk("VEVENT")[0]["uid"]) == first

    token_intake(
        account=dep_account, upload=TokenFile("smime.p7m", abm.token_for(dep_account)), actor=admin
    )

    (renewed,) = _subscribe(feed_url).walk("VEVENT")
    assert str(renewed["uid"]) != first
    dep_account.refresh_from_db()
    assert renewed.decoded("dtstart") == dep_account.token_expires_at


def test_text_is_escaped_folded_at_75_octets_and_lines_end_in_crlf(client_as, viewer, dep_account):
    name = "Springfield, Elementary; Grades K\\12 - " + "é" * 40
    DEPAccount.objects.filter(pk=dep_account.pk).update(display_name=name)
    path = urlsplit(_feed_url(client_as(viewer))).path

    raw = Client().get(path).content

    assert b"Springfield\\, Elementary\\; Grades K\\\\12" in raw
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines)
    # Folded between characters, never inside one: every line is UTF-8 on its own.
    assert all(line.decode() for line in lines if line)
    (event,) = Calendar.from_ical(raw).walk("VEVENT")
    assert str(event["summary"]) == f"DEP server token of {name} expires"


def test_only_the_secrets_hash_is_stored(client_as, viewer):
    feed_url = _feed_url(client_as(viewer))
    secret = urlsplit(feed_url).path.removeprefix("/calendar/").removesuffix(".ics")

    feed = CalendarFeed.objects.get(user=viewer)

    assert feed.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in client_as(viewer).get(reverse("dep_accounts:calendar")).content.decode()


def test_a_wrong_secret_finds_no_feed(client_as, viewer, dep_account):
    _feed_url(client_as(viewer))

    assert Client().get(reverse("dep_accounts:calendar_feed", args=["guess"])).status_code == 404


def test_replacing_the_address_revokes_the_old_one(client_as, viewer, dep_account):
    client = client_as(viewer)
    old = urlsplit(_feed_url(client)).path
    new = urlsplit(_feed_url(client)).path

    assert old != new
    assert Client().get(old).status_code == 404
    assert Client().get(new).status_code == 200
    assert CalendarFeed.objects.filter(user=viewer).count() == 1


def test_a_user_who_loses_their_role_loses_their_feed(client_as, viewer, dep_account):
    path = urlsplit(_feed_url(client_as(viewer))).path
    viewer.groups.remove(Group.objects.get(name=VIEWERS))

    assert Client().get(path).status_code == 404


def test_the_calendar_page_is_for_users_with_a_role(client, nobody):
    url = reverse("dep_accounts:calendar")
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    client.force_login(nobody)
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    assert not CalendarFeed.objects.exists()


def test_a_content_token_has_its_own_event_with_its_renewal_steps(
    apps_books, client_as, viewer, admin, content_token
):
    calendar = _subscribe(_feed_url(client_as(viewer)))

    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == content_token.expires_at
    assert str(event["summary"]) == "Apps and Books content token of Springfield High expires"
    description = str(event["description"])
    assert "Sign in to Apple Business Manager as vpp.manager@springfield.example" in description
    assert "Payments and Billing > Apps and Books" in description
    edit_url = reverse("dep_accounts:content_token_edit", args=[content_token.pk])
    assert edit_url in description

    content_token_intake(
        content_token=content_token,
        upload=TokenFile("renewed.vpptoken", apps_books.token()),
        actor=admin,
    )
    (renewed,) = _subscribe(_feed_url(client_as(viewer))).walk("VEVENT")
    assert str(renewed["uid"]) != str(event["uid"])
