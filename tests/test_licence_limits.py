"""The licence's terms enforced on sync, against applesim over real HTTP: the device limit stops
a sync at the limit without losing a stored device, and a licence not valid yet syncs nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from dep_accounts.models import DEPAccount, DEPDevice
from dep_accounts.selectors import banner_items
from dep_accounts.services import sync_pages
from dep_accounts.services.licence import licence_document_issue, licence_install
from dep_accounts.services.sync import SyncUnavailableError, devices_sync
from dep_accounts.services.sync_requests import account_sync_request, accounts_due_for_sync

pytestmark = pytest.mark.django_db(transaction=True)

Result = DEPAccount.SyncResult


def _licence_install(*, device_limit: int, starts_in_days: int = -1):
    now = timezone.now()
    document = licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer="Springfield Schools",
        plan="Education",
        device_limit=device_limit,
        valid_from=now + timedelta(days=starts_in_days),
        valid_until=now + timedelta(days=365),
    )
    return licence_install(document=document, actor=None, replace=True)


def _stored(account: DEPAccount) -> set[str]:
    return set(
        DEPDevice.objects.filter(account=account, removed_at__isnull=True).values_list(
            "serial_number", flat=True
        )
    )


def _limit_lines() -> list[str]:
    return [i["text"] for i in banner_items() if "upgrade the licence" in i["text"]]


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(sync_pages, "PAGE_LIMIT", 100)


def test_a_licence_for_one_device_stores_one_of_five_and_says_upgrade(abm, dep_account):
    _licence_install(device_limit=1)
    abm.sim.control.devices_add(abm.server_uuid, 5)

    outcome = devices_sync(account=dep_account)

    dep_account.refresh_from_db()
    assert outcome.result == Result.FAILED
    assert outcome.message.startswith("1 of 1 devices: upgrade the licence")
    assert dep_account.last_sync_message == outcome.message
    assert dep_account.sync_lock_until is None
    assert DEPDevice.objects.count() == 1
    assert _limit_lines() == [outcome.message]


def test_after_the_upgrade_the_next_sync_takes_the_devices_held_back(abm, dep_account, small_pages):
    _licence_install(device_limit=150)
    abm.sim.control.devices_add(abm.server_uuid, 250)

    first = devices_sync(account=dep_account)
    assert first.result == Result.FAILED
    assert len(_stored(dep_account)) == 150

    _licence_install(device_limit=1000)
    second = devices_sync(account=dep_account)

    assert second.result == Result.OK
    assert _stored(dep_account) == abm.sim.control.device_serials(abm.server_uuid)
    assert _limit_lines() == []


def test_a_smaller_licence_keeps_every_stored_device_and_their_changes(abm, dep_account):
    _licence_install(device_limit=100)
    serials = abm.sim.control.devices_add(abm.server_uuid, 5)
    devices_sync(account=dep_account)
    _licence_install(device_limit=2)

    abm.sim.control.devices_modify(serials[:2], asset_tag="LIB-CART-7")
    abm.sim.control.devices_delete(serials[2:3])
    added = abm.sim.control.devices_add(abm.server_uuid, 3)
    outcome = devices_sync(account=dep_account)

    assert outcome.result == Result.FAILED
    assert outcome.message.startswith("4 of 2 devices: upgrade the licence")
    assert _stored(dep_account) == set(serials) - {serials[2]}
    assert not _stored(dep_account) & set(added)
    assert DEPDevice.objects.get(serial_number=serials[0]).asset_tag == "LIB-CART-7"
    assert DEPDevice.objects.get(serial_number=serials[2]).removed_at is not None


def test_the_limit_counts_the_devices_of_every_account(abm, dep_account, admin):
    from dep_accounts.services.accounts import account_create
    from dep_accounts.services.intake import token_check, token_take
    from dep_accounts.services.verdict import Intent

    _licence_install(device_limit=6)
    abm.sim.control.devices_add(abm.server_uuid, 4)
    assert devices_sync(account=dep_account).result == Result.OK
    other_server = abm.server_add("Shelbyville MDM")
    abm.sim.control.devices_add(other_server, 4)
    other = account_create(actor=admin)
    check = token_check(account=other, token_file=abm.token_for(other, server_uuid=other_server))
    other = token_take(
        account=other, check=check, actor=admin, file_name="smime.p7m", intent=Intent.ADD
    ).account

    outcome = devices_sync(account=other)

    assert outcome.result == Result.FAILED
    assert len(_stored(other)) == 2
    assert outcome.message.startswith("6 of 6 devices")


def test_a_licence_not_valid_yet_permits_no_sync(abm, dep_account):
    licence = _licence_install(device_limit=1000, starts_in_days=300)
    abm.sim.control.devices_add(abm.server_uuid, 3)

    with pytest.raises(SyncUnavailableError, match="starts on"):
        account_sync_request(account=dep_account, actor=None)
    assert accounts_due_for_sync() == []
    outcome = devices_sync(account=dep_account)
    assert outcome.result == Result.FAILED
    assert DEPDevice.objects.count() == 0
    assert any(
        f"starts on {licence.valid_from:%-d %b %Y}" in item["text"] for item in banner_items()
    )
