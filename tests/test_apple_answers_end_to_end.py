"""Apple as it really answers, end to end: the portal against applesim answering as Apple's live
service does (docs/apple-answers.md): reset tokens, OAuth keys that do not match, cursors that
stick, devices incremental syncs never report, migration deadlines, over-long strings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from applesim.tokens import server_token_issue
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice
from dep_accounts.selectors import banner_items
from dep_accounts.services import device_upsert
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import token_check
from dep_accounts.services.renewal.watch import guarded_renewals_check
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.sync_pages import STALLED_PAGES_LIMIT
from dep_accounts.services.verdict import AppleRefusedTokenError

pytestmark = pytest.mark.django_db

State = DEPAccount.State
Result = DEPAccount.SyncResult


def _portal_serials(account: DEPAccount) -> set[str]:
    return set(
        DEPDevice.objects.filter(account=account, removed_at__isnull=True).values_list(
            "serial_number", flat=True
        )
    )


def _synced(account: DEPAccount) -> DEPAccount:
    outcome = devices_sync(account=account)
    account.refresh_from_db()
    assert outcome.result == account.last_sync_result
    return account


@pytest.mark.parametrize("code", ["token_rejected", "signature_invalid"])
def test_a_reset_token_is_rejected_by_apple_with_the_banner_and_the_guarded_renewal_alarm(
    abm, client_as, admin, dep_account, licence, code, emails_flush
):
    abm.sim.control.reset_token_code_set(code)
    admin.email = "alex@springfield.example"
    admin.save()
    client_as(admin).post(reverse("dep_accounts:start_renewal", args=[dep_account.pk]))

    abm.token_for(dep_account)  # "Download Token" in ABM resets the portal's token.
    assert guarded_renewals_check() == 1
    account = _synced(dep_account)

    assert account.state == State.REJECTED
    assert account.get_state_display() == "Rejected by Apple"
    assert account.last_sync_result == Result.FAILED
    assert any("upload the new file now" in item["text"] for item in banner_items())
    assert banner_items()[0]["action"] == "Upload the new token"
    assert emails_flush() == 1
    assert len(mail.outbox) == 1
    assert "upload the new file now" in mail.outbox[0].body


def test_a_reset_token_met_by_a_sync_says_to_upload_the_new_token(abm, dep_account, licence):
    abm.token_for(dep_account)

    account = _synced(dep_account)

    assert account.state == State.REJECTED
    assert "Upload the new token" in banner_items()[0]["text"]


def test_a_token_file_whose_keys_do_not_match_is_refused_with_what_to_do(abm, admin):
    account = account_create(actor=admin)
    abm.sim.control.sign_in(org_id=abm.org_id, apple_id=abm.apple_id)
    abm.sim.control.public_key_upload(
        server_uuid=abm.server_uuid, certificate=account.key_pair.certificate_pem.encode()
    )
    issued = abm.sim.control.token_credentials(abm.server_uuid)
    # A file for the right key pair and consumer key, but with another token's secrets.
    mismatched = server_token_issue(
        certificate=account.key_pair.certificate_pem.encode(),
        consumer_key=issued["consumer_key"],
        consumer_secret="CS_" + "0" * 40,
        access_token=issued["access_token"],
        access_secret=issued["access_secret"],
        access_token_expiry=timezone.now() + timedelta(days=300),
    )

    with pytest.raises(AppleRefusedTokenError) as refused:
        token_check(account=account, token_file=mismatched)

    assert "the token file does not match" in refused.value.message
    assert "Download a new token" in refused.value.message


def test_a_cursor_apple_echoes_is_left_after_a_bounded_number_of_pages_for_a_full_fetch(
    abm, dep_account, licence
):
    control = abm.sim.control
    control.devices_add(abm.server_uuid, 30)
    _synced(dep_account)
    control.devices_add(abm.server_uuid, 5)
    control.faults_set("devices_sync", [{"count": 50, "action": "echo_cursor"}])

    account = _synced(dep_account)

    followed = 50 - control.state()["faults_pending"]["devices_sync"]
    assert followed == STALLED_PAGES_LIMIT
    assert account.last_sync_result == Result.OK
    assert "same device cursor" not in account.last_sync_message
    assert "already sent and more to follow" in account.sync_cursor_reset_reason
    assert _portal_serials(account) == control.device_serials(abm.server_uuid)
    assert AuditEvent.objects.filter(
        account=account, details__cursor_reset=account.sync_cursor_reset_reason
    ).exists()


def test_a_cursor_that_sticks_even_in_a_full_fetch_stops_the_sync_with_the_reason(
    abm, dep_account, licence
):
    control = abm.sim.control
    control.devices_add(abm.server_uuid, 10)
    control.faults_set("server_devices", [{"count": 50, "action": "echo_cursor"}])

    account = _synced(dep_account)

    assert 50 - control.state()["faults_pending"]["server_devices"] == 2 * (STALLED_PAGES_LIMIT)
    assert account.last_sync_result == Result.FAILED
    assert "same device cursor" in account.last_sync_message
    assert account.sync_lock_until is None
    assert account.sync_retry_at is not None


def test_full_resync_from_the_page_finds_devices_incremental_syncs_never_reported(
    abm, client, client_as, admin, viewer, dep_account, licence
):
    control = abm.sim.control
    control.devices_add(abm.server_uuid, 20)
    _synced(dep_account)
    control.devices_add(abm.server_uuid, 3)
    control.faults_set("devices_sync", [{"count": 5, "action": "hide_added"}])
    account = _synced(dep_account)
    assert len(_portal_serials(account)) == 20
    url = reverse("dep_accounts:full_resync", args=[account.pk])

    assert client_as(viewer).post(url).status_code == 403
    client.logout()
    assert client.post(url).status_code == 302
    assert DEPAccount.objects.get(pk=account.pk).sync_cursor_reset_at is None
    response = client_as(admin).post(url, follow=True)

    assert "Full re-sync of “Springfield MDM” requested" in response.content.decode()
    assert client_as(admin).get(url).status_code == 405
    account = _synced(account)
    assert _portal_serials(account) == control.device_serials(abm.server_uuid)
    assert account.sync_cursor_reset_reason == "full re-sync requested by alex.admin"
    event = AuditEvent.objects.filter(account=account, actor=admin).first()
    assert "Full re-sync" in event.message


def test_full_resync_from_the_command_line_discards_the_cursor(abm, dep_account, licence):
    control = abm.sim.control
    control.devices_add(abm.server_uuid, 5)
    _synced(dep_account)
    control.devices_delete(sorted(control.device_serials(abm.server_uuid))[:2])
    control.faults_set("devices_sync", [{"count": 5, "status": 200, "body": json.dumps(
        {"devices": [], "cursor": "bm90aGluZyBuZXc", "more_to_follow": False}
    ), "content_type": "application/json;charset=UTF8"}])  # fmt: skip
    assert len(_portal_serials(_synced(dep_account))) == 5  # Apple never said.
    control.faults_clear()

    call_command("dep_account", "full-resync", str(dep_account.pk))

    account = _synced(dep_account)
    assert _portal_serials(account) == control.device_serials(abm.server_uuid)
    assert account.sync_cursor_reset_reason == "full re-sync requested by the portal"


def test_a_full_fetch_reconciles_the_devices_every_week(abm, dep_account, licence, settings):
    settings.DEP_FULL_FETCH_INTERVAL_DAYS = 7
    control = abm.sim.control
    control.devices_add(abm.server_uuid, 5)
    _synced(dep_account)
    control.devices_add(abm.server_uuid, 2)
    control.faults_set("devices_sync", [{"count": 5, "action": "hide_added"}])
    assert len(_portal_serials(_synced(dep_account))) == 5

    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        account = _synced(dep_account)

    assert _portal_serials(account) == control.device_serials(abm.server_uuid)
    assert "periodic full fetch, every 7 day(s)" in account.sync_cursor_reset_reason


def test_migration_deadlines_and_replacements_reach_the_admin(
    abm, client_as, viewer, dep_account, licence
):
    control = abm.sim.control
    migrating, replaced, _kept = control.devices_add(abm.server_uuid, 3)
    _synced(dep_account)
    control.devices_modify([migrating], mdm_migration_deadline="2026-09-30T00:00:00Z")
    control.devices_delete([replaced], released_by_replacement=True)

    account = _synced(dep_account)

    device = DEPDevice.objects.get(serial_number=migrating)
    assert f"{device.mdm_migration_deadline:%Y-%m-%d}" == "2026-09-30"
    assert DEPDevice.objects.get(serial_number=replaced).released_by_replacement
    detail = client_as(viewer).get(account.get_absolute_url()).content.decode()
    assert f"<code>{migrating}</code>: by 30 Sep 2026" in detail
    listed = client_as(viewer).get(reverse("dep_accounts:devices") + "?removed=on").content
    assert "Migration deadline 30 Sep 2026: act before then" in listed.decode()
    assert "released by a replacement" in listed.decode()


def test_an_over_long_model_from_apple_is_fitted_to_its_column(abm, dep_account, licence):
    control = abm.sim.control
    (serial,) = control.devices_add(abm.server_uuid, 1)
    control.devices_modify([serial], model="M" * 300)

    account = _synced(dep_account)

    stored = DEPDevice.objects.get(serial_number=serial).model
    longest = DEPDevice._meta.get_field("model").max_length
    assert account.last_sync_result == Result.OK
    assert len(stored) == longest
    assert stored == "M" * (longest - 1) + "…"


def test_an_unexpected_error_releases_the_lease_and_is_recorded_and_shown(
    abm, dep_account, licence, monkeypatch
):
    control = abm.sim.control
    (serial,) = control.devices_add(abm.server_uuid, 1)
    control.devices_modify([serial], model="M" * 300)
    # SQLite stores any length; this makes it refuse one as Postgres does (DataError there).
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER model_length BEFORE INSERT ON dep_accounts_depdevice"
            " WHEN length(NEW.model) > 200 BEGIN SELECT RAISE(ABORT, 'value too long'); END"
        )
    monkeypatch.setattr(device_upsert, "_fitted", lambda device: device)

    account = _synced(dep_account)

    assert account.last_sync_result == Result.FAILED
    assert account.sync_lock_until is None
    assert account.sync_retry_at is not None
    assert "unexpected error (IntegrityError)" in account.last_sync_message
    assert AuditEvent.objects.filter(
        account=account, outcome=AuditEvent.Outcome.FAILURE, details__has_key="error"
    ).exists()
    assert any("not syncing" in item["text"] for item in banner_items())

    monkeypatch.undo()
    account = _synced(account)
    assert account.last_sync_result == Result.OK
    assert account.sync_alert == ""
    assert not any("not syncing" in item["text"] for item in banner_items())


def test_a_throttled_assignment_is_retried_from_the_portals_records(
    abm, dep_account, admin, licence
):
    from dep_accounts.services.profiles import profile_create

    control = abm.sim.control
    profile = profile_create(
        account=dep_account, actor=admin, name="Students", url="https://mdm.example/enroll"
    )
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        default_profile=profile, assign_default_profile=True
    )
    dep_account.refresh_from_db()
    # Apple's wait is a day (Fleet PR #45590 review): longer than a sync waits by itself.
    control.assign_limit_set(abm.server_uuid, 3, per_seconds=86_400)
    serials = control.devices_add(abm.server_uuid, 6)
    assert _synced(dep_account).last_sync_result == Result.WAITING
    assert DEPDevice.objects.filter(default_profile_pending=True).count() == 3

    control.clock_advance(86_401)
    account = _synced(dep_account)  # Apple's sync answer no longer lists the three.

    assert account.last_sync_result == Result.OK, account.last_sync_message
    assert {control.device(s)["profile_uuid"] for s in serials} == {profile.profile_uuid}
    assert not DEPDevice.objects.filter(default_profile_pending=True).exists()
