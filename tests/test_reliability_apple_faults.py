"""Apple's faults, injected in applesim, met by a real device sync (or token renewal) over HTTP.

For each endpoint and fault: the account says what happened, the requests that reached Apple
are bounded and spaced by Retry-After, and once the fault clears, and an admin has done what the
message asks, the next sync ends with exactly Apple's device set: nothing lost, nothing twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Count

from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice
from dep_accounts.services import sync_pages
from dep_accounts.services.intake import TokenFile, token_intake
from dep_accounts.services.profiles import profile_create
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.verdict import Refusal

pytestmark = pytest.mark.django_db(transaction=True)

State = DEPAccount.State
Result = DEPAccount.SyncResult
Phase = DEPAccount.SyncPhase

DEVICES = 150
PAGE_LIMIT = 50
RETRY_AFTER = 1
# More than any sync may spend: the fault lasts until the test clears it.
FAULT_REPEATS = 10
# Requests one sync may send to a failing endpoint: the first and two retries.
MAX_REQUESTS_PER_FAULT = 3
ENDPOINTS = ("session", "account", "server_devices", "devices_sync", "profile_assign")
CURSOR_ENDPOINTS = ("server_devices", "devices_sync")
DENIED = "Apple denied this MDM server access to the DEP web service"
TERMS = "accept its latest terms and conditions"
RETRY_LATER = "it will be tried again later"
UNREACHABLE = "could not be reached to verify this token"


@dataclass(frozen=True)
class Fault:
    """A fault script entry and what the portal must make of it.

    `says` is in the sync's message, `renewal_says` in the refusal of a token renewal (the only
    call of /account); `state` is the account's state after the sync (None: unchanged).
    """

    name: str
    entry: dict[str, Any]
    result: str
    says: str
    renewal_says: str
    state: str | None = None
    throttles: bool = False
    repeats: int = FAULT_REPEATS


FAULTS = [
    Fault("401", {"status": 401, "body": "UNAUTHORIZED"}, Result.FAILED, DENIED, DENIED),
    Fault("403_access_denied", {"status": 403, "body": "ACCESS_DENIED"}, Result.FAILED, DENIED,
          DENIED),
    Fault("403_t_c_not_signed", {"status": 403, "body": "T_C_NOT_SIGNED"}, Result.FAILED, TERMS,
          "until your organisation accepts the latest terms", state=State.TERMS_NOT_ACCEPTED),
    Fault("403_forbidden", {"status": 403, "body": "FORBIDDEN"}, Result.FAILED, DENIED, DENIED),
    Fault("429_retry_after", {"status": 429, "body": "TOO_MANY_REQUESTS",
          "headers": {"Retry-After": str(RETRY_AFTER)}}, Result.WAITING,
          "Apple asked to wait: the sync resumes after", UNREACHABLE, throttles=True),
    Fault("503_retry_after", {"status": 503, "body": "SERVICE_UNAVAILABLE",
          "headers": {"Retry-After": str(RETRY_AFTER)}}, Result.WAITING,
          "Apple asked to wait: the sync resumes after", UNREACHABLE, throttles=True),
    Fault("500", {"status": 500, "body": "INTERNAL_SERVER_ERROR"}, Result.FAILED,
          "Apple's DEP web service failed (HTTP 500)", UNREACHABLE),
    Fault("timeout", {"action": "timeout", "seconds": 3}, Result.FAILED, "did not answer",
          UNREACHABLE),
    Fault("dropped_connection", {"action": "drop"}, Result.FAILED, "could not be reached",
          UNREACHABLE),
    Fault("malformed_json", {"action": "malformed"}, Result.FAILED,
          "answered with something that is not JSON", UNREACHABLE),
]  # fmt: skip
# A cursor Apple no longer takes is a fault of that one request: a fresh full fetch works.
CURSOR_FAULTS = [
    Fault(f"{code.lower()}_cursor", {"status": 400, "body": f"{code}_CURSOR"}, Result.OK,
          "device records from Apple", "", repeats=1)
    for code in ("EXPIRED", "INVALID", "EXHAUSTED")
]  # fmt: skip
PAIRS = [
    *((endpoint, fault) for endpoint in ENDPOINTS for fault in FAULTS),
    *((endpoint, fault) for endpoint in CURSOR_ENDPOINTS for fault in CURSOR_FAULTS),
]
FAULTS_INJECTED = len(PAIRS)


def _pair_id(pair: tuple[str, Fault]) -> str:
    endpoint, fault = pair
    return f"{endpoint}-{fault.name}"


@pytest.fixture
def small_pages(monkeypatch, settings):
    monkeypatch.setattr(sync_pages, "PAGE_LIMIT", PAGE_LIMIT)
    settings.DEP_API_TIMEOUT_SECONDS = 1


def _apple_serials(abm) -> set[str]:
    return abm.sim.control.device_serials(abm.server_uuid)


def _portal_serials(account: DEPAccount) -> set[str]:
    return set(
        DEPDevice.objects.filter(account=account, removed_at__isnull=True).values_list(
            "serial_number", flat=True
        )
    )


def _assert_exactly_apples_devices(abm, account: DEPAccount) -> None:
    account.refresh_from_db()
    apple = _apple_serials(abm)
    assert _portal_serials(account) == apple
    assert account.device_count == len(apple)
    twice = (
        DEPDevice.objects.filter(account=account)
        .values("serial_number")
        .annotate(rows=Count("id"))
        .filter(rows__gt=1)
    )
    assert not twice.exists()


def _fault_requests(abm, endpoint: str, repeats: int) -> int:
    """How many requests to `endpoint` met the fault so far."""
    return repeats - abm.sim.control.state()["faults_pending"].get(endpoint, 0)


def _prepare(endpoint: str, abm, account: DEPAccount, admin) -> list[dict[str, Any]]:
    """Bring the account to where `endpoint` is called; return the script before the fault."""
    control = abm.sim.control
    if endpoint == "server_devices":
        # The first page goes through: the fault meets a request that carries a cursor.
        return [{"action": "pass"}]
    if endpoint == "devices_sync":
        assert devices_sync(account=account).result == Result.OK
        serials = sorted(_apple_serials(abm))
        control.devices_add(abm.server_uuid, 20)
        control.devices_delete(serials[:10])
        control.devices_modify(serials[10:15], asset_tag="LIB-CART-7")
    if endpoint == "profile_assign":
        profile = profile_create(
            account=account, actor=admin, name="Students", url="https://mdm.example/enroll"
        )
        DEPAccount.objects.filter(pk=account.pk).update(
            default_profile=profile, assign_default_profile=True
        )
    return []


def _recover(abm, account: DEPAccount, admin) -> None:
    """What an admin does once Apple is well again, as the account's message asks."""
    control = abm.sim.control
    control.faults_clear()
    account.refresh_from_db()
    if account.state == State.REJECTED:
        # The token stays rejected, and no sync calls Apple with it, until a new one is uploaded.
        assert devices_sync(account=account).result == Result.FAILED
        assert DEPAccount.objects.get(pk=account.pk).state == State.REJECTED
        token_intake(
            account=account, upload=TokenFile("smime.p7m", abm.token_for(account)), actor=admin
        )
    if account.state == State.TERMS_NOT_ACCEPTED:
        control.terms_set(abm.org_id, True)
    DEPAccount.objects.filter(pk=account.pk).update(sync_retry_at=None)


@pytest.mark.parametrize(("endpoint", "fault"), PAIRS, ids=map(_pair_id, PAIRS))
def test_a_fault_of_apple_is_reported_bounded_and_loses_no_device(
    endpoint: str, fault: Fault, abm, dep_account, licence, admin, small_pages
):
    abm.sim.control.devices_add(abm.server_uuid, DEVICES)
    if endpoint == "account":
        _renewal_meets_the_fault(fault, abm, dep_account, admin)
    else:
        _sync_meets_the_fault(endpoint, fault, abm, dep_account, admin)

    _recover(abm, dep_account, admin)
    recovered = devices_sync(account=dep_account)

    assert recovered.result == Result.OK, recovered.message
    _assert_exactly_apples_devices(abm, dep_account)
    assert dep_account.state == State.OK


def _sync_meets_the_fault(endpoint: str, fault: Fault, abm, account: DEPAccount, admin) -> None:
    passed = _prepare(endpoint, abm, account, admin)
    state_before = DEPAccount.objects.get(pk=account.pk).state
    abm.sim.control.faults_set(endpoint, [*passed, {"count": fault.repeats, **fault.entry}])
    started = time.monotonic()

    outcome = devices_sync(account=account)

    elapsed = time.monotonic() - started
    requests = _fault_requests(abm, endpoint, fault.repeats)
    account.refresh_from_db()
    expected_state = fault.state or state_before
    says = fault.says
    if (endpoint, fault.name) == ("session", "401"):
        # A 401 from /session is Apple's verdict on the server token itself.
        expected_state, says = State.REJECTED, "Apple rejected this server token"
    assert 1 <= requests <= MAX_REQUESTS_PER_FAULT
    assert (outcome.result, account.last_sync_result) == (fault.result, fault.result)
    assert says in account.last_sync_message
    assert account.state == expected_state
    if expected_state != state_before:
        assert says in account.state_detail
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.STATE_CHANGED, account=account
        ).exists()
    if fault.throttles:
        assert requests >= 2
        assert elapsed >= (requests - 1) * RETRY_AFTER
        retry_after = timedelta(seconds=RETRY_AFTER)
        assert account.sync_retry_at >= account.last_sync_started_at + retry_after
    elif fault.result == Result.FAILED and expected_state == state_before:
        # Apple is unwell, not the token: the scheduler comes back later by itself.
        assert account.sync_retry_at > account.last_sync_started_at
        assert RETRY_LATER in account.last_sync_message or DENIED in account.last_sync_message


def _renewal_meets_the_fault(fault: Fault, abm, account: DEPAccount, admin) -> None:
    """/account is called only to check an uploaded token: a renewal meets the fault."""
    assert devices_sync(account=account).result == Result.OK
    token_file = abm.token_for(account)
    abm.sim.control.faults_set("account", [{"count": fault.repeats, **fault.entry}])
    before = DEPAccount.objects.filter(pk=account.pk).values().get()

    with pytest.raises(Refusal) as refused:
        token_intake(account=account, upload=TokenFile("smime.p7m", token_file), actor=admin)

    assert fault.renewal_says in refused.value.message
    assert 1 <= _fault_requests(abm, "account", fault.repeats) <= MAX_REQUESTS_PER_FAULT
    assert DEPAccount.objects.filter(pk=account.pk).values().get() == before
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.TOKEN_REJECTED, outcome=AuditEvent.Outcome.FAILURE
    ).exists()
    abm.sim.control.faults_clear()
    # The download above reset the token in use: the admin uploads the file again.
    token_intake(account=account, upload=TokenFile("smime.p7m", token_file), actor=admin)


def test_56_endpoint_and_fault_pairs_are_injected() -> None:
    assert FAULTS_INJECTED == len(ENDPOINTS) * len(FAULTS) + len(CURSOR_ENDPOINTS) * 3 == 56


def test_devices_whose_default_profile_assignment_failed_get_it_once_apple_recovers(
    abm, dep_account, licence, admin, small_pages
):
    control = abm.sim.control
    control.devices_add(abm.server_uuid, DEVICES)
    _prepare("profile_assign", abm, dep_account, admin)
    control.faults_set("profile_assign", [{"count": FAULT_REPEATS, "status": 500}])
    assert devices_sync(account=dep_account).result == Result.FAILED

    _recover(abm, dep_account, admin)
    assert devices_sync(account=dep_account).result == Result.OK

    profile_uuid = dep_account.default_profile.profile_uuid
    unassigned = [
        serial
        for serial in _apple_serials(abm)
        if control.device(serial)["profile_uuid"] != profile_uuid
    ]
    assert unassigned == []
