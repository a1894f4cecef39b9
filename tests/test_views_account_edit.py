"""Edit DEP Account: the renewal rules, the settings, the banner it updates, and the secrets no
page shows. Tokens are real .p7m files downloaded from applesim's ABM."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from dep_accounts.context_processors import banner
from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, DEPAccount, EnrollmentProfile, ServerToken
from dep_accounts.selectors import token_custodians
from dep_accounts.services.accounts import account_create
from dep_accounts.services.apple_access import server_token_credentials
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.services.intake import token_check
from tests import accessible
from tests.edit_page import account_snapshot, account_with_token, edit_form, edit_url, p7m_upload

pytestmark = pytest.mark.django_db

State = DEPAccount.State


# Edit DEP Account and the renewal rules


def test_the_edit_page_is_titled_edit_dep_account_with_an_upload_token_field(
    client_as, admin, dep_account
):
    response = client_as(admin).get(edit_url(dep_account))
    tree = accessible.page(response)
    assert accessible.title(tree) == "Edit DEP Account"
    headings = accessible.find_all(tree, "heading")
    assert [accessible.name(tree, h) for h in headings[:2]] == ["Edit DEP Account", "Upload Token"]
    token_field = accessible.find(tree, "file", "Upload Token")
    assert accessible.attribute(token_field, "accept") == ".p7m"
    assert "Choose file" in response.content.decode()  # drawn for the eye, hidden from readers
    assert accessible.find_all(
        tree, "checkbox", "The Apple ID that manages this server in ABM has changed"
    )
    form = accessible.form_of(tree, token_field)
    assert accessible.attribute(form, "enctype") == "multipart/form-data"
    assert accessible.form_of(tree, accessible.find(tree, "button", "Save")) is form
    # Save, and Log out in the user menu
    assert len(accessible.find_all(tree, "button")) == 2


def test_a_refused_token_is_described_to_its_field_and_field_errors_to_theirs(
    client_as, admin, abm, dep_account
):
    client = client_as(admin)
    other = abm.server_add("Shelbyville Campus MDM")
    token_file = abm.token_for(dep_account, server_uuid=other)
    refused = client.post(
        edit_url(dep_account), {**edit_form(dep_account), "token_file": p7m_upload(token_file)}
    )
    tree = accessible.page(refused)
    described = accessible.description(tree, accessible.find(tree, "file", "Upload Token"))
    assert "This token is for the MDM server “Shelbyville Campus MDM”" in described

    invalid = client.post(edit_url(dep_account), edit_form(dep_account, sync_interval_minutes=0))
    tree = accessible.page(invalid)
    field = accessible.find(tree, "spinbutton", "Sync interval (minutes)")
    assert accessible.attribute(field, "aria-invalid") == "true"
    assert "greater than or equal to" in accessible.description(tree, field)


def test_renewal_moves_the_expiry_a_year_ahead_and_the_banner_updates_at_once(
    client_as, admin, abm, licence
):
    account = account_with_token(abm, admin, validity_days=10)
    client = client_as(admin)
    assert "expires in 10 days" in client.get(reverse("dep_accounts:dashboard")).content.decode()
    previous = account.server_tokens.get()

    response = client.post(
        edit_url(account), {**edit_form(account), "token_file": p7m_upload(abm.token_for(account))}
    )

    assert response.status_code == 302 and response.url == account.get_absolute_url()
    account.refresh_from_db()
    assert account.state == State.OK
    assert account.days_left() == 365
    page = client.get(response.url).content.decode()
    expiry = timezone.localtime(account.token_expires_at)
    assert f"Server token renewed: valid until {expiry:%-d %b %Y} (365 days)." in page
    assert "banner-item" not in page
    previous.refresh_from_db()
    assert not previous.is_current and previous.replaced_at is not None
    assert account.server_tokens.get(is_current=True).file_name == "Springfield MDM_Token_smime.p7m"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_RENEWED, actor=admin).exists()


def test_renewal_refuses_a_token_for_another_mdm_server_showing_both_side_by_side(
    client_as, admin, dep_account, abm
):
    other_uuid = abm.server_add("Other MDM")
    token_file = abm.token_for(dep_account, server_uuid=other_uuid)
    before = account_snapshot(dep_account)

    response = client_as(admin).post(
        edit_url(dep_account),
        {
            **edit_form(dep_account, display_name="Renamed", sync_interval_minutes=30),
            "token_file": p7m_upload(token_file),
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "This file is for" in page and "This account" in page
    assert page.index("Other MDM") < page.index("This account")
    assert other_uuid in page and dep_account.server_uuid in page
    assert "Add it as a new DEP account instead" in page
    assert reverse("dep_accounts:add") in accessible.hrefs(accessible.page(response))
    assert "Other MDM" in response.context["form"].errors["token_file"][0]
    assert account_snapshot(dep_account) == before


def test_renewal_refuses_an_expired_token(client_as, admin, dep_account, abm):
    token_file = abm.token_for(dep_account, validity_days=1)
    before = account_snapshot(dep_account)
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        response = client_as(admin).post(
            edit_url(dep_account),
            {
                **edit_form(dep_account, display_name="Renamed"),
                "token_file": p7m_upload(token_file),
            },
        )
    assert response.status_code == 200
    assert "expired" in response.context["form"].errors["token_file"][0]
    assert account_snapshot(dep_account) == before


def test_renewal_refuses_a_token_that_expires_before_the_current_one(
    client_as, admin, dep_account, abm
):
    token_file = abm.token_for(dep_account, validity_days=200)
    before = account_snapshot(dep_account)
    response = client_as(admin).post(
        edit_url(dep_account), {**edit_form(dep_account), "token_file": p7m_upload(token_file)}
    )
    assert response.status_code == 200
    assert "before the current one" in response.context["form"].errors["token_file"][0]
    assert account_snapshot(dep_account) == before


def test_renewal_by_another_apple_id_needs_the_confirmation_and_is_audited(
    client_as, admin, dep_account, abm
):
    client = client_as(admin)
    token_file = abm.token_for(dep_account, apple_id="deputy@springfield.example")
    before = account_snapshot(dep_account)

    refused = client.post(
        edit_url(dep_account), {**edit_form(dep_account), "token_file": p7m_upload(token_file)}
    )

    assert refused.status_code == 200
    page = refused.content.decode()
    assert "deputy@springfield.example" in page and "it.admin@springfield.example" in page
    checkbox = accessible.find(
        accessible.page(refused),
        "checkbox",
        "The Apple ID that manages this server in ABM has changed",
    )
    assert accessible.attribute(checkbox, "checked") is None
    assert account_snapshot(dep_account) == before

    accepted = client.post(
        edit_url(dep_account),
        {**edit_form(dep_account), "token_file": p7m_upload(token_file), "apple_id_changed": "on"},
    )

    assert accepted.status_code == 302
    dep_account.refresh_from_db()
    assert dep_account.admin_apple_id == "deputy@springfield.example"
    assert dep_account.server_tokens.get(is_current=True).apple_id_change_confirmed
    event = AuditEvent.objects.get(action=AuditEvent.Action.APPLE_ID_CHANGED)
    assert (event.actor, event.account) == (admin, dep_account)


def test_renewal_refuses_a_token_that_a_newer_download_has_reset(
    client_as, admin, dep_account, abm
):
    older = abm.token_for(dep_account)
    abm.token_for(dep_account)
    before = account_snapshot(dep_account)
    response = client_as(admin).post(
        edit_url(dep_account), {**edit_form(dep_account), "token_file": p7m_upload(older)}
    )
    assert response.status_code == 200
    assert "Apple does not accept" in response.context["form"].errors["token_file"][0]
    assert account_snapshot(dep_account) == before
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.TOKEN_REJECTED, details__reason="apple_refused"
    ).exists()


def test_renewal_fails_cleanly_when_apple_cannot_be_reached(client_as, admin, dep_account, abm):
    token_file = abm.token_for(dep_account)
    abm.sim.control.faults_set("session", [{"count": 10, "status": 503}])
    before = account_snapshot(dep_account)
    try:
        response = client_as(admin).post(
            edit_url(dep_account), {**edit_form(dep_account), "token_file": p7m_upload(token_file)}
        )
    finally:
        abm.sim.control.faults_clear()
    assert response.status_code == 200
    assert "Nothing was changed" in response.context["form"].errors["token_file"][0]
    assert account_snapshot(dep_account) == before


def test_saving_settings_without_a_file_keeps_the_token(client_as, admin, dep_account):
    client = client_as(admin)
    profile = EnrollmentProfile.objects.create(
        account=dep_account, name="Staff iPads", url="https://mdm.example/enroll"
    )
    before = account_snapshot(dep_account)["server_tokens"]
    response = client.post(
        edit_url(dep_account),
        {
            "display_name": "Springfield (main)",
            "notification_emails": "it@springfield.example, deputy@x.example\nops@x.example",
            "sync_interval_minutes": "30",
            "default_profile": profile.pk,
            "assign_default_profile": "on",
        },
    )
    assert response.status_code == 302
    dep_account.refresh_from_db()
    assert dep_account.display_name == "Springfield (main)"
    assert dep_account.notification_email_list == [
        "it@springfield.example",
        "deputy@x.example",
        "ops@x.example",
    ]
    assert (dep_account.auto_sync, dep_account.sync_interval_minutes) == (False, 30)
    assert (dep_account.default_profile, dep_account.assign_default_profile) == (profile, True)
    assert account_snapshot(dep_account)["server_tokens"] == before
    assert (
        "Saved the settings of “Springfield (main)”." in client.get(response.url).content.decode()
    )
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_CHANGED).exists()


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("notification_emails", "it@springfield.example, not-an-address", "not-an-address"),
        ("sync_interval_minutes", "5", "greater than or equal to 15"),
        ("sync_interval_minutes", "2000", "less than or equal to 1440"),
        ("assign_default_profile", "on", "Choose the profile"),
    ],
)
def test_edit_refuses_invalid_settings_and_saves_nothing(
    client_as, admin, dep_account, field, value, error
):
    before = account_snapshot(dep_account)
    response = client_as(admin).post(
        edit_url(dep_account), edit_form(dep_account, **{field: value})
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(error in message for messages in errors.values() for message in messages)
    assert account_snapshot(dep_account) == before


# The banner and secrets


def test_the_banner_costs_at_most_one_query(rf, admin, dep_account, django_assert_max_num_queries):
    banner_refresh()
    request = rf.get("/")
    request.user = admin
    with django_assert_max_num_queries(1):
        items = banner(request)["banner_items"]
    assert items


def test_no_page_shows_a_server_token_secret_or_the_private_key(client_as, admin, dep_account, abm):
    client = client_as(admin)
    credentials = server_token_credentials(dep_account.server_tokens.get(is_current=True))
    private_key = secret_decrypt(dep_account.key_pair.private_key_encrypted).decode()
    secrets = [
        credentials.consumer_key,
        credentials.consumer_secret,
        credentials.access_token,
        credentials.access_secret,
        *private_key.splitlines()[1:-1],
    ]
    awaiting = account_create(actor=admin)
    responses = [
        client.get(url)
        for url in (
            reverse("dep_accounts:dashboard"),
            reverse("dep_accounts:list"),
            dep_account.get_absolute_url(),
            edit_url(dep_account),
            reverse("dep_accounts:public_key", args=[dep_account.pk]),
            reverse("dep_accounts:devices"),
            reverse("dep_accounts:profiles"),
            reverse("dep_accounts:subscription"),
            reverse("dep_accounts:audit_log"),
            reverse("dep_accounts:add_token", args=[awaiting.pk]),
        )
    ]
    lab_token_file = abm.token_for(awaiting, server_uuid=abm.server_add("Lab MDM"))
    lab_token = token_check(account=awaiting, token_file=lab_token_file).token
    secrets += [lab_token.consumer_key, lab_token.consumer_secret, lab_token.access_secret]
    responses.append(
        client.post(
            reverse("dep_accounts:add_token", args=[awaiting.pk]),
            {"token_file": p7m_upload(lab_token_file)},
        )
    )
    responses.append(
        client.post(
            edit_url(dep_account),
            {
                **edit_form(dep_account),
                "token_file": p7m_upload(
                    abm.token_for(dep_account, server_uuid=abm.server_add("X"))
                ),
            },
        )
    )
    for response in responses:
        assert response.status_code == 200
        html = response.content.decode()
        assert "PRIVATE KEY" not in html
        for secret in secrets:
            assert secret not in html


def test_token_custodians_are_grouped_by_apple_id_with_a_count_and_dates(
    client_as, viewer, admin, dep_account
):
    first = dep_account.server_tokens.get()
    deputy = "deputy.it@springfield.example"
    history = [
        ("it.admin@springfield.example", timezone.now() - timedelta(days=730), False),
        ("it.admin@springfield.example", timezone.now() - timedelta(days=365), False),
        (deputy, timezone.now() - timedelta(days=1), True),
    ]
    ServerToken.objects.filter(pk=first.pk).update(
        uploaded_at=timezone.now() - timedelta(days=1000), is_current=False
    )
    for number, (apple_id, uploaded_at, confirmed) in enumerate(history):
        ServerToken.objects.create(
            account=dep_account,
            secrets_encrypted=first.secrets_encrypted,
            access_token_expiry=uploaded_at + timedelta(days=365),
            consumer_key_fingerprint=f"SHA256:{number}",
            server_uuid=first.server_uuid,
            admin_apple_id=apple_id,
            apple_id_change_confirmed=confirmed,
            uploaded_by=admin,
            uploaded_at=uploaded_at,
            is_current=apple_id == deputy,
        )

    custodians = token_custodians(dep_account.server_tokens.all())
    page = client_as(viewer).get(dep_account.get_absolute_url()).content.decode()

    assert [(c.apple_id, c.token_count, c.is_current) for c in custodians] == [
        ("it.admin@springfield.example", 3, False),
        (deputy, 1, True),
    ]
    assert custodians[0].first_uploaded_at < custodians[0].last_uploaded_at
    oldest, newest = custodians[0].first_uploaded_at, custodians[0].last_uploaded_at
    assert (
        f"downloaded 3 tokens, uploaded {timezone.localtime(oldest):%-d %b %Y} \N{EN DASH} "
        f"{timezone.localtime(newest):%-d %b %Y}"
    ) in page
    assert page.count("it.admin@springfield.example</strong>") == 1
    assert f"Changed from it.admin@springfield.example to {deputy}, confirmed by alex.admin" in (
        page
    )
