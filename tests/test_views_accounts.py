"""DEP Accounts pages: the list, Add DEP Account and the account page (Edit DEP Account is in
test_views_account_edit.py). Tokens are real .p7m files downloaded from applesim's ABM."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, DEPAccount, EnrollmentProfile
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import token_check
from dep_accounts.templatetags.console import ago
from tests import accessible
from tests.edit_page import edit_url, p7m_upload

pytestmark = pytest.mark.django_db

State = DEPAccount.State
LIST_TABLE = "DEP accounts, soonest token expiry first"


# The DEP Accounts list


def _accounts_listed(count: int, start: int = 0) -> None:
    now = timezone.now()
    DEPAccount.objects.bulk_create(
        DEPAccount(
            server_name=f"MDM server {n:02d}",
            server_uuid=f"00000000-0000-4000-8000-{n:012d}",
            org_name="Springfield Schools",
            admin_apple_id="it.admin@springfield.example",
            state=State.OK,
            token_expires_at=now + timedelta(days=100 + n),
            device_count=n,
        )
        for n in range(start, start + count)
    )


def test_the_dep_accounts_list_costs_the_same_queries_for_3_and_30_accounts(client_as, admin):
    client = client_as(admin)
    _accounts_listed(3)
    with CaptureQueriesContext(connection) as three:
        assert client.get(reverse("dep_accounts:list")).status_code == 200
    _accounts_listed(27, start=3)
    with CaptureQueriesContext(connection) as thirty:
        listing = accessible.page(client.get(reverse("dep_accounts:list")))
    assert len(accessible.rows(listing, LIST_TABLE)) == 30
    assert len(thirty) == len(three)


def test_the_list_shows_soonest_expiry_first_with_days_left_and_state(client_as, viewer):
    # Mid-morning, so that 5 days and an hour never cross a midnight: 5 calendar days.
    now = timezone.now().replace(hour=9, minute=0)
    DEPAccount.objects.create(
        server_name="Later MDM", server_uuid="later", state=State.OK,
        token_expires_at=now + timedelta(days=200), device_count=12,
    )  # fmt: skip
    DEPAccount.objects.create(
        server_name="Sooner MDM", server_uuid="sooner", display_name="Main campus",
        state=State.CRITICAL, token_expires_at=now + timedelta(days=5, hours=1), device_count=3,
    )  # fmt: skip
    sooner, later = accessible.rows(
        accessible.page(client_as(viewer).get(reverse("dep_accounts:list"))), LIST_TABLE
    )
    assert sooner[0].startswith("Sooner MDM Main campus") and later[0].startswith("Later MDM")
    assert "5 days left" in sooner[3]
    assert sooner[-1] == State.CRITICAL.label


def test_the_server_name_cell_reveals_an_edit_button_for_admins(client_as, admin):
    account = DEPAccount.objects.create(
        server_name="Springfield MDM", server_uuid="u1", state=State.OK,
        token_expires_at=timezone.now() + timedelta(days=90),
    )  # fmt: skip
    listing = accessible.page(client_as(admin).get(reverse("dep_accounts:list")))
    edit = accessible.find(listing, "link", "Edit Springfield MDM")
    assert accessible.attribute(edit, "href") == edit_url(account)
    assert accessible.attribute(edit, "title") == "Edit"


def test_accounts_awaiting_a_token_link_to_the_add_flow(client_as, admin):
    account = account_create(actor=admin)
    page = client_as(admin).get(reverse("dep_accounts:list")).content.decode()
    assert "Awaiting token" in page
    assert reverse("dep_accounts:add_token", args=[account.pk]) in page


# Add DEP Account


def test_adding_a_dep_account_end_to_end(client_as, admin, abm):
    client = client_as(admin)
    assert b"Create key pair" in client.get(reverse("dep_accounts:add")).content

    response = client.post(reverse("dep_accounts:add"))
    account = DEPAccount.objects.get()
    add_token_url = reverse("dep_accounts:add_token", args=[account.pk])
    assert response.status_code == 302 and response.url == add_token_url

    response = client.get(add_token_url)
    steps = response.content.decode()
    public_key_url = reverse("dep_accounts:public_key", args=[account.pk])
    assert public_key_url in accessible.hrefs(accessible.page(response))
    assert "Download Token" in steps and "Upload public key" in steps
    assert "Downloading a new server token will reset your existing one" in steps

    public_key = client.get(public_key_url)
    assert public_key["Content-Type"] == "application/x-pem-file"
    assert public_key["Content-Disposition"] == (
        f'attachment; filename="mdmportal_{account.pk}_public_key.pem"'
    )
    assert public_key.content == account.key_pair.certificate_pem.encode()
    assert b"PRIVATE KEY" not in public_key.content

    token_file = abm.token_for(account)
    preview = client.post(add_token_url, {"token_file": p7m_upload(token_file)})
    assert preview.status_code == 200
    text = preview.content.decode()
    check = token_check(account=account, token_file=token_file)
    for shown in (
        "Springfield MDM",
        "Springfield Schools",
        "it.admin@springfield.example",
        f"{check.token.access_token_expiry:%-d %b %Y}",
        "365 days left",
        check.token.consumer_key_fingerprint,
    ):
        assert shown in text
    assert reverse("dep_accounts:add_confirm", args=[account.pk]) in text
    assert not account.server_tokens.exists()

    confirmed = client.post(reverse("dep_accounts:add_confirm", args=[account.pk]))
    assert confirmed.status_code == 302 and confirmed.url == account.get_absolute_url()
    account.refresh_from_db()
    assert (account.server_name, account.state) == ("Springfield MDM", State.OK)
    assert account.server_tokens.get().file_name == "Springfield MDM_Token_smime.p7m"
    assert f"dep_accounts.staged_token.{account.pk}" not in client.session
    assert "Added “Springfield MDM”" in client.get(confirmed.url).content.decode()
    listing = accessible.page(client.get(reverse("dep_accounts:list")))
    link = accessible.find(listing, "link", "Springfield MDM")
    assert accessible.attribute(link, "href") == account.get_absolute_url()


def test_the_add_steps_of_an_account_that_has_its_token_open_the_account(
    client_as, admin, dep_account
):
    response = client_as(admin).get(reverse("dep_accounts:add_token", args=[dep_account.pk]))
    assert response.status_code == 302 and response.url == dep_account.get_absolute_url()


def test_the_checked_upload_waits_for_the_confirm_step_encrypted(client_as, admin, abm):
    client = client_as(admin)
    account = account_create(actor=admin)
    token_file = abm.token_for(account)
    client.post(
        reverse("dep_accounts:add_token", args=[account.pk]), {"token_file": p7m_upload(token_file)}
    )
    staged = client.session[f"dep_accounts.staged_token.{account.pk}"]
    stored = str(staged)
    assert base64.b64encode(token_file).decode()[:40] not in stored
    assert token_file.decode(errors="ignore")[200:260] not in stored
    assert secret_decrypt(staged[0]["token_file"].encode()) == token_file


def test_add_refuses_a_file_that_is_not_a_server_token_and_audits_it(client_as, admin):
    account = account_create(actor=admin)
    response = client_as(admin).post(
        reverse("dep_accounts:add_token", args=[account.pk]),
        {"token_file": p7m_upload(b"not a server token", name="notes.txt")},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["token_file"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REJECTED)
    assert (event.outcome, event.account, event.actor) == ("failure", account, admin)
    assert event.details == {"reason": "bad_file", "file_name": "notes.txt", "kind": "server_token"}
    account.refresh_from_db()
    assert account.state == State.AWAITING_TOKEN and not account.server_tokens.exists()


def test_add_refuses_a_file_far_larger_than_a_server_token(client_as, admin, settings):
    settings.DEP_TOKEN_MAX_BYTES = 4096
    account = account_create(actor=admin)
    response = client_as(admin).post(
        reverse("dep_accounts:add_token", args=[account.pk]),
        {"token_file": p7m_upload(b"x" * 5000)},
    )
    assert response.status_code == 200
    assert "a server token is about 2 KB" in response.context["form"].errors["token_file"][0]


def test_add_of_a_server_already_added_points_to_its_edit_page(client_as, admin, abm):
    client = client_as(admin)
    account = account_create(actor=admin)
    existing = DEPAccount.objects.create(
        server_name="Springfield MDM", server_uuid=abm.server_uuid, state=State.OK,
        token_expires_at=timezone.now() + timedelta(days=90),
    )  # fmt: skip
    preview = client.post(
        reverse("dep_accounts:add_token", args=[account.pk]),
        {"token_file": p7m_upload(abm.token_for(account))},
    )
    text = preview.content.decode()
    assert "already added as" in text and edit_url(existing) in text
    assert reverse("dep_accounts:add_confirm", args=[account.pk]) not in text


def test_confirming_after_the_server_was_added_elsewhere_says_so(client_as, admin, abm):
    client = client_as(admin)
    account = account_create(actor=admin)
    client.post(
        reverse("dep_accounts:add_token", args=[account.pk]),
        {"token_file": p7m_upload(abm.token_for(account))},
    )
    existing = DEPAccount.objects.create(
        server_name="Springfield MDM", server_uuid=abm.server_uuid, state=State.OK,
        token_expires_at=timezone.now() + timedelta(days=90),
    )  # fmt: skip
    response = client.post(reverse("dep_accounts:add_confirm", args=[account.pk]))
    assert response.status_code == 200
    assert "is already added as" in response.context["form"].errors["token_file"][0]
    assert edit_url(existing) in response.content.decode()
    assert not account.server_tokens.exists()


def test_confirming_without_an_upload_asks_for_it_again(client_as, admin):
    account = account_create(actor=admin)
    client = client_as(admin)
    response = client.post(reverse("dep_accounts:add_confirm", args=[account.pk]))
    assert response.url == reverse("dep_accounts:add_token", args=[account.pk])
    assert "upload it again" in client.get(response.url).content.decode()


def test_the_add_steps_link_to_the_simulated_abm_only_in_the_demo(client_as, admin, settings):
    account = account_create(actor=admin)
    client = client_as(admin)
    url = reverse("dep_accounts:add_token", args=[account.pk])
    settings.APPLESIM_ABM_URL = ""
    assert b"Demo: Apple Business Manager is simulated" not in client.get(url).content
    settings.APPLESIM_ABM_URL = "http://127.0.0.1:8001/abm/"
    response = client.get(url)
    assert "Demo: Apple Business Manager is simulated at" in response.content.decode()
    assert "http://127.0.0.1:8001/abm/" in accessible.hrefs(accessible.page(response))


def test_the_edit_page_links_to_the_simulated_abm_only_in_the_demo(
    client_as, admin, dep_account, settings
):
    client = client_as(admin)
    settings.APPLESIM_ABM_URL = ""
    page = client.get(edit_url(dep_account)).content.decode()
    assert "Demo: Apple Business Manager is simulated" not in page
    assert (
        " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} ".join(
            ["Devices", "Management Services", "Springfield MDM", "Download Token"]
        )
        in page
    )
    settings.APPLESIM_ABM_URL = "http://127.0.0.1:8001/abm/"
    response = client.get(edit_url(dep_account))
    assert "Demo: Apple Business Manager is simulated at" in response.content.decode()
    assert "http://127.0.0.1:8001/abm/" in accessible.hrefs(accessible.page(response))


def test_the_add_steps_use_apples_current_wording_and_name_the_older_once(client_as, admin):
    account = account_create(actor=admin)
    response = client_as(admin).get(reverse("dep_accounts:add_token", args=[account.pk]))
    text = response.content.decode()

    assert (
        "Devices \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} Management Services"
        in accessible.text(accessible.page(response))
    )
    assert text.count("Your MDM Servers") == 1
    assert "Springfield_MDM_Token_2025-06-01T09-30-00Z_smime.p7m" in text


# The account page


def test_the_account_page_shows_details_history_and_renewal_steps(client_as, viewer, dep_account):
    EnrollmentProfile.objects.create(
        account=dep_account, name="Staff iPads", url="https://mdm.example/enroll"
    )
    page = client_as(viewer).get(dep_account.get_absolute_url()).content.decode()
    current = dep_account.server_tokens.get()
    for shown in (
        "Springfield MDM",
        dep_account.server_uuid,
        "Springfield Schools",
        "it.admin@springfield.example",
        current.consumer_key_fingerprint,
        "smime.p7m",
        "alex.admin",
        "Current",
        "Staff iPads",
        "Renewing this token",
        "Download Token",
        reverse("dep_accounts:public_key", args=[dep_account.pk]),
        f"{reverse('dep_accounts:devices')}?account={dep_account.pk}",
    ):
        assert shown in page


def test_sync_now_is_disabled_with_the_reason_when_the_token_is_expired(
    client_as, admin, dep_account, licence
):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        state=State.EXPIRED, state_detail="The server token expired on 2026-01-01."
    )
    tree = accessible.page(client_as(admin).get(dep_account.get_absolute_url()))
    sync_now = accessible.find(tree, "button", "Sync now")
    assert accessible.attribute(sync_now, "disabled") is not None
    assert accessible.description(tree, sync_now) == "The server token expired on 2026-01-01."


def test_sync_now_is_disabled_until_the_subscription_is_renewed(client_as, admin, dep_account):
    tree = accessible.page(client_as(admin).get(dep_account.get_absolute_url()))
    sync_now = accessible.find(tree, "button", "Sync now")
    assert accessible.attribute(sync_now, "disabled") is not None
    assert "licence" in accessible.description(tree, sync_now)


def test_sync_now_queues_a_sync_and_says_so(client_as, admin, dep_account, licence):
    client = client_as(admin)
    page = client.get(dep_account.get_absolute_url()).content.decode()
    assert 'id="sync-unavailable"' not in page
    response = client.post(reverse("dep_accounts:sync", args=[dep_account.pk]))
    assert response.url == dep_account.get_absolute_url()
    assert "Sync of “Springfield MDM” requested" in client.get(response.url).content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SYNC, actor=admin).exists()


def test_sync_now_refused_shows_why(client_as, admin, dep_account):
    client = client_as(admin)
    response = client.post(reverse("dep_accounts:sync", args=[dep_account.pk]))
    assert response.url == dep_account.get_absolute_url()
    assert "licence" in client.get(response.url).content.decode()


@pytest.mark.parametrize(
    "elapsed",
    [timedelta(seconds=s) for s in (59, 60, 61, 3599, 3600, 86399, 86400, 604800)]
    + [timedelta(days=d, hours=5) for d in (6, 7, 13, 27, 28, 40, 400)],
)
def test_a_last_sync_reads_as_timesince_would_say_it(elapsed):
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        expected = (
            "just now"
            if elapsed.total_seconds() < 60
            else f"{timesince(now - elapsed, depth=1)} ago"
        )
        assert ago(now - elapsed) == expected
