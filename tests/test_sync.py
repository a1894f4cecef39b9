"""Device sync against applesim over real HTTP: full fetch, incremental sync, Apple's verdicts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dep_accounts.models import DEPAccount, DEPDevice, SubscriptionLicence
from dep_accounts.selectors import banner_items
from dep_accounts.services import default_profile, sync_pages
from dep_accounts.services.profiles import profile_create
from dep_accounts.services.sync import SyncBusyError, SyncUnavailableError, devices_sync
from dep_accounts.services.sync_requests import account_sync_request, accounts_due_for_sync

pytestmark = pytest.mark.django_db(transaction=True)

State = DEPAccount.State
Result = DEPAccount.SyncResult


def _portal_serials(account: DEPAccount) -> set[str]:
    return set(
        DEPDevice.objects.filter(account=account, removed_at__isnull=True).values_list(
            "serial_number", flat=True
        )
    )


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(sync_pages, "PAGE_LIMIT", 100)


def test_a_full_fetch_across_pages_ends_with_exactly_apples_devices(
    abm, dep_account, licence, small_pages
):
    abm.sim.control.devices_add(abm.server_uuid, 250)

    outcome = devices_sync(account=dep_account)

    dep_account.refresh_from_db()
    assert outcome.result == Result.OK
    assert _portal_serials(dep_account) == abm.sim.control.device_serials(abm.server_uuid)
    assert dep_account.device_count == 250
    assert dep_account.sync_phase == DEPAccount.SyncPhase.SYNC
    assert DEPDevice.objects.count() == 250


def test_an_incremental_sync_takes_additions_changes_and_removals(
    abm, dep_account, licence, small_pages
):
    control = abm.sim.control
    serials = control.devices_add(abm.server_uuid, 120)
    devices_sync(account=dep_account)

    added = control.devices_add(abm.server_uuid, 30)
    control.devices_modify(serials[:5], asset_tag="LIB-CART-7")
    control.devices_delete(serials[5:15])
    outcome = devices_sync(account=dep_account)

    assert outcome.result == Result.OK
    assert _portal_serials(dep_account) == control.device_serials(abm.server_uuid)
    assert set(added) <= _portal_serials(dep_account)
    assert DEPDevice.objects.get(serial_number=serials[0]).asset_tag == "LIB-CART-7"
    assert (
        DEPDevice.objects.filter(serial_number__in=serials[5:15], removed_at__isnull=False).count()
        == 10
    )


def test_an_expired_cursor_leads_to_a_full_fetch_again(abm, dep_account, licence, small_pages):
    control = abm.sim.control
    serials = control.devices_add(abm.server_uuid, 150)
    devices_sync(account=dep_account)
    control.devices_delete(serials[:20])
    control.clock_advance(8 * 86400)

    outcome = devices_sync(account=dep_account)

    assert outcome.result == Result.OK
    assert _portal_serials(dep_account) == control.device_serials(abm.server_uuid)
    assert DEPDevice.objects.filter(removed_at__isnull=False).count() == 20


def test_a_connection_dropped_mid_fetch_loses_nothing_and_repeats_nothing(
    abm, dep_account, licence, small_pages
):
    control = abm.sim.control
    control.devices_add(abm.server_uuid, 450)
    control.faults_set(
        "server_devices", [{"count": 2, "action": "pass"}, {"count": 3, "action": "drop"}]
    )

    failed = devices_sync(account=dep_account)
    dep_account.refresh_from_db()
    saved_before_crash = DEPDevice.objects.count()
    control.faults_clear()
    DEPAccount.objects.filter(pk=dep_account.pk).update(sync_retry_at=None)
    recovered = devices_sync(account=dep_account)

    assert failed.result == Result.FAILED
    assert 0 < saved_before_crash < 450
    assert recovered.result == Result.OK
    assert _portal_serials(dep_account) == control.device_serials(abm.server_uuid)
    assert DEPDevice.objects.count() == 450


def test_a_token_reset_in_abm_marks_the_account_rejected_and_raises_the_banner(
    abm, dep_account, licence
):
    abm.token_for(dep_account)

    outcome = devices_sync(account=dep_account)

    dep_account.refresh_from_db()
    assert outcome.result == Result.FAILED
    assert dep_account.state == State.REJECTED
    assert any("no longer accepts" in item["text"] for item in banner_items())
    with pytest.raises(SyncUnavailableError):
        account_sync_request(account=dep_account, actor=None)


def test_terms_not_accepted_stops_sync_until_they_are(abm, dep_account, licence):
    abm.sim.control.terms_set(abm.org_id, False)

    devices_sync(account=dep_account)
    dep_account.refresh_from_db()
    assert dep_account.state == State.TERMS_NOT_ACCEPTED
    assert any("terms and conditions" in item["text"] for item in banner_items())


def test_an_expired_licence_blocks_every_sync_until_renewed(abm, dep_account, licence):
    SubscriptionLicence.objects.update(valid_until=timezone.now() - timedelta(days=1))

    with pytest.raises(SyncUnavailableError, match="renew the subscription first"):
        account_sync_request(account=dep_account, actor=None)
    assert accounts_due_for_sync() == []
    assert devices_sync(account=dep_account).result == Result.FAILED


def test_only_one_sync_runs_per_account_and_a_dead_workers_lease_expires(abm, dep_account, licence):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        sync_lock_until=timezone.now() + timedelta(minutes=5),
        last_sync_result=Result.RUNNING,
    )
    with pytest.raises(SyncBusyError) as busy:
        devices_sync(account=dep_account)
    assert 290 < busy.value.retry_after <= 301
    dep_account.refresh_from_db()
    assert not dep_account.sync_interrupted

    DEPAccount.objects.filter(pk=dep_account.pk).update(
        sync_lock_until=timezone.now() - timedelta(seconds=1)
    )
    dep_account.refresh_from_db()
    assert dep_account.sync_interrupted
    assert devices_sync(account=dep_account).result == Result.OK


def test_new_devices_get_the_default_profile_despite_throttling(
    abm, dep_account, licence, monkeypatch, admin
):
    monkeypatch.setattr(default_profile, "MAX_INLINE_WAIT_SECONDS", 3)
    control = abm.sim.control
    profile = profile_create(
        account=dep_account, actor=admin, name="Students", url="https://mdm.example/enroll"
    )
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        default_profile=profile, assign_default_profile=True
    )
    dep_account.refresh_from_db()
    control.assign_limit_set(abm.server_uuid, 40, per_seconds=1)
    serials = control.devices_add(abm.server_uuid, 60)
    waits: list[float] = []

    def wait_on_applesims_clock(seconds: float) -> None:
        waits.append(seconds)
        control.clock_advance(seconds)

    outcome = devices_sync(account=dep_account, sleep=wait_on_applesims_clock)

    assert outcome.result == Result.OK, outcome.message
    assert waits == [1]  # Apple's Retry-After, honoured once
    assert {control.device(s)["profile_uuid"] for s in serials} == {profile.profile_uuid}
    assert DEPDevice.objects.filter(profile_uuid=profile.profile_uuid).count() == 60


def test_accounts_are_due_after_their_interval(abm, dep_account, licence):
    assert accounts_due_for_sync() == [dep_account.pk]
    devices_sync(account=dep_account)
    assert accounts_due_for_sync() == []
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        last_sync_at=timezone.now() - timedelta(minutes=61)
    )
    assert accounts_due_for_sync() == [dep_account.pk]


def test_the_device_count_is_right_while_a_sync_is_under_way(
    abm, dep_account, licence, small_pages
):
    control = abm.sim.control
    serials = control.devices_add(abm.server_uuid, 250)
    control.faults_set(
        "server_devices", [{"count": 2, "action": "pass"}, {"count": 3, "action": "drop"}]
    )

    devices_sync(account=dep_account)
    dep_account.refresh_from_db()
    assert dep_account.device_count == DEPDevice.objects.filter(account=dep_account).count() == 200

    control.faults_clear()
    control.devices_delete(serials[:10])
    DEPAccount.objects.filter(pk=dep_account.pk).update(sync_retry_at=None)
    for _ in range(2):  # the fetch resumes, then a sync brings the deletions
        devices_sync(account=dep_account)
        dep_account.refresh_from_db()
        assert dep_account.device_count == len(_portal_serials(dep_account))
    assert dep_account.device_count == len(control.device_serials(abm.server_uuid)) == 240
