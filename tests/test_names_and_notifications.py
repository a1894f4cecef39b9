"""A line break in a name stops nothing: names admins type are refused with a control character,
and every email subject is one line whatever Apple calls a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse

from dep_accounts import tasks
from dep_accounts.encryption import secret_encrypt
from dep_accounts.forms import AccountEditForm, ProfileForm
from dep_accounts.models import (
    APIToken,
    AuditEvent,
    DEPAccount,
    OutboundEmail,
    ServerToken,
)
from dep_accounts.plain_text import name_validate
from dep_accounts.services.api_tokens import api_token_create
from dep_accounts.services.outbox import subject_line

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
BROKEN_NAMES = [
    "Springfield\nBcc: everyone@example.com",
    "Springfield\r",
    "Spring\tfield",
    "Spring\x00field",
    "Spring\x1bfield",
    "Spring\x85field",
    "Spring\u2028field",
    "Spring\u2029field",
]


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_a_name_with_a_control_character_is_refused(name):
    with pytest.raises(Exception, match="A name is one line of text"):
        name_validate(name)


def test_names_of_every_language_and_punctuation_are_accepted():
    for name in ["Springfield Élémentaire", "東京都 MDM", "Ops — “Main” (2026)", "Café 🍎"]:
        name_validate(name)


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_every_email_subject_is_one_line(name):
    subject = subject_line(f"DEP server token of {name} expires today")
    assert subject.isprintable()
    assert "\n" not in subject and "\r" not in subject


def test_the_edit_form_refuses_a_display_name_with_a_line_break(dep_account, client_as, admin):
    data = {"display_name": "Springfield\nMDM", "sync_interval_minutes": 60}
    form = AccountEditForm(data=data, account=dep_account)
    assert not form.is_valid()
    assert "A name is one line of text" in form.errors["display_name"][0]
    response = client_as(admin).post(reverse("dep_accounts:edit", args=[dep_account.pk]), data)
    assert response.status_code == 200
    dep_account.refresh_from_db()
    assert dep_account.display_name == ""


def test_the_profile_form_refuses_a_name_or_department_with_a_line_break(dep_account):
    base = {"account": dep_account.pk, "url": "https://mdm.example.com/enroll"}
    for field in ("name", "department"):
        form = ProfileForm(data=base | {"name": "Staff", field: "Staff\r\nLoans"})
        assert not form.is_valid()
        assert field in form.errors


def test_the_api_refuses_an_account_name_with_a_line_break(client, admin):
    key = api_token_create(user=admin, name="script").key
    response = client.post(
        reverse("api:dep_accounts"),
        data=json.dumps({"name": "Springfield\nMDM"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 400
    assert "A name is one line of text" in response.json()["error"]
    assert not DEPAccount.objects.exists()


def test_an_api_token_name_with_a_line_break_is_refused(client_as, admin):
    response = client_as(admin).post(reverse("dep_accounts:me"), {"name": "build\n01"})
    assert response.status_code == 200
    assert "A name is one line of text" in response.content.decode()
    assert not APIToken.objects.exists()


def test_the_command_refuses_a_name_with_a_line_break(tmp_path):
    with pytest.raises(CommandError, match="A name is one line of text"):
        call_command(
            "dep_account",
            "create",
            "--name",
            "Springfield\nMDM",
            "--public-key-out",
            str(tmp_path / "key.pem"),
            stdout=StringIO(),
        )
    assert not DEPAccount.objects.exists()


def _due_account(server_name: str, contact: str) -> DEPAccount:
    """An account whose token expires in 7 days, named by Apple as `server_name`."""
    account = DEPAccount.objects.create(
        server_name=server_name,
        server_uuid=contact.split("@")[0].upper(),
        org_name="Springfield\nSchools",
        token_expires_at=NOW + timedelta(days=7),
        notification_emails=contact,
    )
    ServerToken.objects.create(
        account=account,
        secrets_encrypted=secret_encrypt(b"{}"),
        access_token_expiry=account.token_expires_at,
        consumer_key_fingerprint="SHA256:00",
        server_uuid=account.server_uuid,
    )
    return account


@time_machine.travel(NOW, tick=False)
def test_a_line_break_in_apples_server_name_still_queues_a_one_line_subject():
    account = _due_account("Springfield\nMDM\r\nBcc: x@example.com", "ops@springfield.example")
    tasks.token_expiry_refresh()
    (email,) = OutboundEmail.objects.filter(account=account)
    assert (
        email.subject == "DEP server token of Springfield MDM Bcc: x@example.com expires in 7 days"
    )
    assert AuditEvent.objects.get(account=account, action="reminder_sent").outcome == "success"
