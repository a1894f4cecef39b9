"""Edit DEP Account keeps a file refused only for a missing confirmation (issue 12, item 1).

A token downloaded by another Apple ID is refused until the admin ticks "The Apple ID that
manages this server in ABM has changed". The checked file stays staged, encrypted, so ticking
the box and saving applies it without choosing the file again; a tick with no file to apply
saves nothing and says so.
"""

from __future__ import annotations

import base64

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.views.staging import token_key

pytestmark = pytest.mark.django_db

DEPUTY = "deputy@springfield.example"
FILE_NAME = "MDM_Token_2026-05-04_smime.p7m"


def _settings(account: DEPAccount, **changes: object) -> dict:
    return {"sync_interval_minutes": account.sync_interval_minutes, "auto_sync": "on", **changes}


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_ticking_the_apple_id_box_applies_the_file_kept_from_the_refusal(
    client_as, admin, abm, dep_account
):
    client = client_as(admin)
    url = reverse("dep_accounts:edit", args=[dep_account.pk])
    token_file = abm.token_for(dep_account, apple_id=DEPUTY)

    refused = client.post(
        url,
        _settings(
            dep_account,
            display_name="Springfield district",
            token_file=SimpleUploadedFile(FILE_NAME, token_file),
        ),
    )

    assert refused.status_code == 200
    assert refused.context["upload_error"].code == "apple_id_changed"
    page = refused.content.decode()
    assert f"“{FILE_NAME}” is kept: tick the box below and save to apply it" in page
    staged = client.session[token_key(dep_account.pk)]
    assert base64.b64encode(token_file).decode()[:40] not in str(staged)
    assert secret_decrypt(staged[0]["token_file"].encode()) == token_file

    applied = client.post(
        url, _settings(dep_account, display_name="Springfield district", apple_id_changed="on")
    )

    assert applied.status_code == 302
    dep_account.refresh_from_db()
    current = dep_account.server_tokens.get(is_current=True)
    assert (current.admin_apple_id, current.file_name) == (DEPUTY, FILE_NAME)
    assert current.apple_id_change_confirmed
    assert dep_account.display_name == "Springfield district"
    assert [m for m in _messages(applied) if m.startswith("Server token renewed")]
    assert token_key(dep_account.pk) not in client.session
    event = AuditEvent.objects.get(action=AuditEvent.Action.APPLE_ID_CHANGED)
    assert (event.actor, event.account) == (admin, dep_account)


def test_ticking_the_apple_id_box_with_no_file_saves_nothing_and_says_so(
    client_as, admin, dep_account
):
    before = DEPAccount.objects.filter(pk=dep_account.pk).values().get()
    response = client_as(admin).post(
        reverse("dep_accounts:edit", args=[dep_account.pk]),
        _settings(dep_account, display_name="Renamed", apple_id_changed="on"),
    )

    assert response.status_code == 200
    assert "No server token file is waiting for this confirmation" in " ".join(
        response.context["form"].errors["apple_id_changed"]
    )
    assert not [m for m in _messages(response) if m.startswith("Saved the settings")]
    assert DEPAccount.objects.filter(pk=dep_account.pk).values().get() == before


def test_a_kept_file_is_dropped_when_the_settings_are_saved_without_the_tick(
    client_as, admin, abm, dep_account
):
    client = client_as(admin)
    url = reverse("dep_accounts:edit", args=[dep_account.pk])
    token_file = abm.token_for(dep_account, apple_id=DEPUTY)
    client.post(url, _settings(dep_account, token_file=SimpleUploadedFile(FILE_NAME, token_file)))
    assert token_key(dep_account.pk) in client.session

    saved = client.post(url, _settings(dep_account, display_name="Renamed"))

    assert saved.status_code == 302
    assert token_key(dep_account.pk) not in client.session
    assert dep_account.server_tokens.get(is_current=True).admin_apple_id != DEPUTY


def test_a_kept_file_is_only_for_the_account_it_was_refused_on(client_as, admin, abm, dep_account):
    client = client_as(admin)
    other = DEPAccount.objects.create(server_name="Shelbyville MDM", sync_interval_minutes=60)
    token_file = abm.token_for(dep_account, apple_id=DEPUTY)
    client.post(
        reverse("dep_accounts:edit", args=[dep_account.pk]),
        _settings(dep_account, token_file=SimpleUploadedFile(FILE_NAME, token_file)),
    )

    response = client.post(
        reverse("dep_accounts:edit", args=[other.pk]), _settings(other, apple_id_changed="on")
    )

    assert response.status_code == 200
    assert response.context["form"].errors["apple_id_changed"]
    assert not other.server_tokens.exists()
