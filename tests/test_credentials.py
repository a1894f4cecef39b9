"""Every kind of Apple credential in one place: Admin > Apple Credentials and its CSV, the banner
(most urgent of any kind first), the reminders and webhooks of content tokens, and the daily
check of content tokens with Apple (revoked, invalid, another MDM), through applesim."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import (
    AuditEvent,
    Banner,
    ContentToken,
    CredentialReminder,
    DEPAccount,
    PushCertificate,
    Webhook,
    WebhookDelivery,
)
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.content_tokens.state import content_tokens_check
from dep_accounts.services.credentials import credentials_all
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.reminders import credential_reminders_send
from dep_accounts.services.webhooks import webhook_create
from dep_accounts.tasks import content_tokens_check_with_apple, token_expiry_refresh

pytestmark = pytest.mark.django_db

CREDENTIALS = reverse("dep_accounts:credentials")


def _expires_in(content_token: ContentToken, delta: timedelta) -> None:
    # From mid-morning, so that a delta of days and a few hours never crosses a midnight.
    today = timezone.now().replace(hour=9, minute=0)
    ContentToken.objects.filter(pk=content_token.pk).update(expires_at=today + delta)


def test_the_credentials_page_lists_every_kind_soonest_first(
    client_as, viewer, dep_account, content_token
):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        token_expires_at=timezone.now() + timedelta(days=400)
    )

    rows = credentials_all()
    page = client_as(viewer).get(CREDENTIALS).content.decode()

    assert [(r.kind, r.name) for r in rows] == [
        ("content_token", "Springfield High"),
        ("dep_account", "Springfield MDM"),
    ]
    assert page.index("Springfield High") < page.index("Springfield MDM")
    assert "Apps and Books content token" in page and "DEP server token" in page
    assert "vpp.manager<wbr>@springfield.example" in page
    assert "it.admin<wbr>@springfield.example" in page
    # A viewer reads it all but is offered no edit button.
    assert reverse("dep_accounts:content_token_edit", args=[content_token.pk]) not in page


def test_the_csv_export_has_one_row_per_credential_and_defuses_formulas(
    client_as, viewer, dep_account, content_token
):
    ContentToken.objects.filter(pk=content_token.pk).update(location_name="=HYPERLINK(1)")

    response = client_as(viewer).get(reverse("dep_accounts:credentials_csv"))

    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="apple-credentials.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Kind", "Name", "Expires", "Days left", "State", "Apple ID", "URL"]
    by_kind = {row[0]: row for row in rows[1:]}
    assert by_kind["Apps and Books content token"][1] == "'=HYPERLINK(1)"
    assert by_kind["Apps and Books content token"][4] == "Active"
    assert by_kind["DEP server token"][5] == "it.admin@springfield.example"
    assert len(rows) == 3


def test_the_banner_puts_the_most_urgent_problem_of_any_kind_first(dep_account, content_token):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        token_expires_at=timezone.now() + timedelta(days=2)
    )
    ContentToken.objects.filter(pk=content_token.pk).update(state=ContentToken.State.REVOKED)
    token_states_refresh()

    items = banner_refresh().items

    assert items[0]["text"].startswith("Apple has revoked the content token of “Springfield High”")
    assert items[0]["level"] == "critical"
    assert items[1]["text"].startswith("The server token of “Springfield MDM” expires in 2 days")


def test_past_five_problems_of_several_kinds_one_line_counts_the_rest(dep_account):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        token_expires_at=timezone.now() + timedelta(days=20)
    )
    for n in range(6):
        ContentToken.objects.create(
            location_name=f"School {n}",
            location_uid=f"uid-{n}",
            credential_encrypted=b"",
            fingerprint=f"f{n}",
            expires_at=timezone.now() + timedelta(days=10 + n),
        )
    token_expiry_refresh()

    items = Banner.objects.get().items

    assert [i["text"].split("“")[1].split("”")[0] for i in items[:5]] == [
        f"School {n}" for n in range(5)
    ]
    assert items[5]["text"] == (
        "2 more Apple credentials need attention: expiring, expired or refused by Apple."
    )
    assert items[5]["url"] == CREDENTIALS


@pytest.mark.parametrize(
    ("problem", "state", "banner"),
    [
        ("revoke", ContentToken.State.REVOKED, "Apple has revoked the content token"),
        ("claim", ContentToken.State.ANOTHER_MDM, "Another MDM (“Other MDM”) now manages"),
        ("expire", ContentToken.State.EXPIRED, "expired on"),
    ],
)
def test_the_daily_check_with_apple_finds_each_problem_its_own_state_and_banner(
    apps_books, content_token, licence, problem, state, banner, admin
):
    control = apps_books.sim.control
    if problem == "revoke":
        control.vpp_token_revoke(secret_decrypt(content_token.credential_encrypted))
    elif problem == "claim":
        other = {"id": "other-mdm", "name": "Other MDM", "metadata": "other.example"}
        control.vpp_mdm_info_set(apps_books.uid, other)
    else:
        # Apple's clock past the token's expiry, and the portal's with it.
        control.clock_advance(301 * 24 * 3600)

    if problem == "expire":
        with time_machine.travel(timezone.now() + timedelta(days=301)):
            token_expiry_refresh()
    else:
        content_tokens_check_with_apple()

    content_token.refresh_from_db()
    assert content_token.state == state
    assert banner in Banner.objects.get().items[0]["text"]
    if problem != "expire":
        event = AuditEvent.objects.get(action=AuditEvent.Action.STATE_CHANGED)
        assert event.content_token == content_token and event.outcome == "failure"


def test_a_new_upload_lifts_a_revoked_state(client_as, admin, apps_books, content_token, licence):
    apps_books.sim.control.vpp_token_revoke(secret_decrypt(content_token.credential_encrypted))
    assert content_tokens_check() == 1
    content_token.refresh_from_db()
    assert content_token.state == ContentToken.State.REVOKED

    client_as(admin).post(
        reverse("dep_accounts:content_token_edit", args=[content_token.pk]),
        {"token_file": SimpleUploadedFile("renewed.vpptoken", apps_books.token())},
    )
    content_token.refresh_from_db()
    assert content_token.state == ContentToken.State.OK


def test_without_a_licence_nothing_is_asked_of_apple(apps_books, content_token):
    before = apps_books.sim.control.state()
    assert content_tokens_check() == 0
    assert apps_books.sim.control.state() == before
    content_token.refresh_from_db()
    assert content_token.state == ContentToken.State.OK


def test_the_daily_check_counts_licences_again(apps_books, content_token, licence):
    apps_books.sim.control.vpp_assets_add(apps_books.uid, 4, licences=25)
    content_tokens_check()
    content_token.refresh_from_db()
    assert (content_token.asset_count, content_token.licences_total) == (4, 100)


@pytest.mark.parametrize(("days_left", "step"), [(30, 30), (12, 14), (3, 3), (0, 0)])
def test_a_content_token_reminder_goes_out_once_per_step_with_a_webhook_naming_its_kind(
    content_token, admin, django_user_model, emails_flush, days_left, step
):
    ContentToken.objects.filter(pk=content_token.pk).update(
        notification_emails="vpp-ops@springfield.example"
    )
    django_user_model.objects.create_superuser("root", "root@x.example", "pw-long-enough-42")
    webhook_create(url="https://hooks.springfield.example/", events=["token.reminder"], actor=None)
    _expires_in(content_token, timedelta(days=days_left, hours=2))

    assert credential_reminders_send() == 1
    assert credential_reminders_send() == 0

    assert CredentialReminder.objects.get().days_before == step
    assert emails_flush() == 2
    assert sorted(m.to[0] for m in mail.outbox) == [
        "root@x.example",
        "vpp-ops@springfield.example",
    ]
    body = mail.outbox[0].body
    assert "Apps and Books content token of “Springfield High”" in body
    assert "as vpp.manager@springfield.example" in body
    assert f"/admin/apple-vpp/content-tokens/{content_token.pk}/edit/" in body
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == Webhook.Event.REMINDER
    assert delivery.payload["kind"] == "content_token"
    assert delivery.payload["reminder_days_before"] == step
    assert delivery.payload["credential"]["name"] == "Springfield High"


def test_a_renewed_content_token_starts_its_reminders_again(
    apps_books, content_token, admin, emails_flush
):
    _expires_in(content_token, timedelta(days=5))
    assert credential_reminders_send() == 1
    content_token.refresh_from_db()
    renewed = content_token_intake(
        content_token=content_token,
        upload=TokenFile("renewed.vpptoken", apps_books.token(validity_days=6)),
        actor=admin,
    )
    _expires_in(renewed, timedelta(days=5))
    assert credential_reminders_send() == 1
    assert CredentialReminder.objects.count() == 2


def test_a_revoked_content_token_sends_one_rejected_webhook_with_its_kind(
    apps_books, content_token, licence
):
    webhook_create(url="https://hooks.springfield.example/", events=["token.rejected"], actor=None)
    apps_books.sim.control.vpp_token_revoke(secret_decrypt(content_token.credential_encrypted))

    content_tokens_check()
    content_tokens_check()

    delivery = WebhookDelivery.objects.get()
    assert delivery.event == Webhook.Event.TOKEN_REJECTED
    assert delivery.payload["kind"] == "content_token"
    assert delivery.payload["credential"]["state"] == "revoked"


def test_the_demo_seeds_a_content_token_expiring_in_20_days_once(
    sim, settings, monkeypatch, tmp_path
):
    monkeypatch.delenv("VPP_API_URL", raising=False)
    settings.DEP_API_URL = sim.url
    settings.VAR_DIR = tmp_path

    call_command("seed_demo", "--no-credentials", stdout=StringIO())
    call_command("seed_demo", "--no-credentials", stdout=StringIO())

    content_token = ContentToken.objects.get()
    assert content_token.days_left() in (19, 20)
    assert content_token.location_name == "Springfield High School"
    assert content_token.licences_total == 12 * 40
    texts = [item["text"] for item in Banner.objects.get().items]
    assert any("server token of “Springfield district”" in t for t in texts)
    assert any("content token of “Springfield High School” expires in" in t for t in texts)


def test_the_push_certificate_is_one_of_the_credentials(
    client_as, viewer, dep_account, push_portal, admin
):
    first = push_portal.first_certificate(admin)
    PushCertificate.objects.filter(pk=first.pk).update(
        expires_at=timezone.now() + timedelta(days=5)
    )
    token_expiry_refresh()

    rows = credentials_all()
    assert [(r.kind, r.name) for r in rows] == [
        ("apns", first.topic),
        ("dep_account", "Springfield MDM"),
    ]
    assert rows[0].apple_id == push_portal.apple_id
    page = client_as(viewer).get(CREDENTIALS).content.decode()
    assert "APNs push certificate" in page and first.topic in page
    assert (
        Banner.objects.get()
        .items[0]["text"]
        .startswith("The APNs push certificate expires in 5 days")
    )
