"""API tokens: kept as a hash, last use recorded, created and revoked on the user's own page,
and refused once their user is deactivated or their expiry day has come."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import APIToken, AuditEvent
from dep_accounts.services.api_tokens import (
    api_token_authenticate,
    api_token_create,
)
from tests import accessible

pytestmark = pytest.mark.django_db


def _list_url() -> str:
    return reverse("api:dep_accounts")


# API tokens.


def test_keys_are_stored_hashed_and_the_database_never_holds_one(admin):
    created = api_token_create(user=admin, name="renewal script")
    key = created.key
    assert re.fullmatch(r"mdmp_[A-Za-z0-9_-]{40}", key)
    stored = APIToken.objects.get()
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert stored.key_prefix == key[:12]
    for model in apps.get_models():
        for row in model.objects.values_list():
            assert key not in repr(row), model
            assert key[12:] not in repr(row), model


def test_a_keys_last_use_is_recorded_at_most_once_a_minute(admin):
    created = api_token_create(user=admin, name="renewal script")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert api_token_authenticate(key=created.key).user == admin
    created.api_token.refresh_from_db()
    assert created.api_token.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        api_token_authenticate(key=created.key)
    created.api_token.refresh_from_db()
    assert created.api_token.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        api_token_authenticate(key=created.key)
    created.api_token.refresh_from_db()
    assert created.api_token.last_used_at == start + timedelta(seconds=61)


def test_a_key_of_a_deactivated_user_no_longer_works(api, keys, admin):
    admin.is_active = False
    admin.save()
    assert api.get(_list_url(), key=keys["admin"]).status_code == 401


# The user's page.


def test_a_viewer_creates_a_token_seen_once_and_uses_it(client_as, viewer, api):
    client = client_as(viewer)
    response = client.post(reverse("dep_accounts:me"), {"name": "dashboard"})
    assert response.status_code == 200
    key = response.context["created"].key
    page = response.content.decode()
    assert key in page
    assert "shown only this once" in page
    again = client.get(reverse("dep_accounts:me")).content.decode()
    assert key not in again
    assert f"{key[:12]}…" in again
    assert "dashboard" in again
    assert api.get(_list_url(), key=key).status_code == 200
    event = AuditEvent.objects.get(action="api_token_changed")
    assert event.actor_name == "val.viewer"
    assert key not in event.message


def test_revoking_a_token_stops_it_at_once(client_as, admin, api):
    created = api_token_create(user=admin, name="renewal script")
    assert api.get(_list_url(), key=created.key).status_code == 200
    response = client_as(admin).post(
        reverse("dep_accounts:me"), {"revoke": created.api_token.pk}, follow=True
    )
    assert "Revoked the API token “renewal script”." in response.content.decode()
    assert api.get(_list_url(), key=created.key).status_code == 401
    created.api_token.refresh_from_db()
    assert created.api_token.revoked_at is not None
    assert AuditEvent.objects.filter(message__contains="revoked").count() == 1


def test_nobody_revokes_another_users_token(client_as, admin, viewer, api):
    created = api_token_create(user=admin, name="renewal script")
    response = client_as(viewer).post(reverse("dep_accounts:me"), {"revoke": created.api_token.pk})
    assert response.status_code == 404
    assert api.get(_list_url(), key=created.key).status_code == 200


def test_the_page_needs_a_signed_in_user_with_a_role(client, client_as, nobody):
    response = client.get(reverse("dep_accounts:me"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert client_as(nobody).get(reverse("dep_accounts:me")).status_code == 403
    assert client_as(nobody).post(reverse("dep_accounts:me"), {"name": "x"}).status_code == 403
    assert not APIToken.objects.exists()


def test_the_user_menu_links_to_the_page(client_as, viewer):
    menu_links = accessible.hrefs(
        accessible.page(client_as(viewer).get(reverse("dep_accounts:dashboard")))
    )
    assert reverse("dep_accounts:me") in menu_links


def test_an_api_token_with_an_expiry_date_is_refused_from_that_day(client_as, admin):
    page = reverse("dep_accounts:me")
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = client_as(admin).post(page, {"name": "contractor", "expires_on": tomorrow})
    assert response.status_code == 200
    # The page that shows the key once is never kept by a browser or a proxy.
    assert "no-store" in response["Cache-Control"]
    key = response.context["created"].key
    api_token = APIToken.objects.get(name="contractor")
    assert timezone.localtime(api_token.expires_at).date() == tomorrow
    listing = client_as(admin).get(page).content.decode()
    assert "Expires" in listing and f"{tomorrow:%-d %b %Y}, 00:00" in listing

    anonymous = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert anonymous.get(reverse("api:dep_accounts"), **headers).status_code == 200
    with time_machine.travel(api_token.expires_at + timedelta(seconds=1)):
        refused = anonymous.get(reverse("api:dep_accounts"), **headers)
        assert refused.status_code == 401
        assert "it expired" in refused.json()["error"]
        assert ">Expired<" in client_as(admin).get(page).content.decode()


def test_an_api_token_cannot_expire_today_or_earlier(client_as, admin):
    today = timezone.localdate()
    response = client_as(admin).post(
        reverse("dep_accounts:me"), {"name": "contractor", "expires_on": today}
    )
    assert "Choose a day after today" in response.content.decode()
    assert not APIToken.objects.exists()
