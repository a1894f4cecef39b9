"""The portal's DEP client against applesim over real HTTP: sessions, devices, profiles, errors."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from applesim.testing import RunningSim, sim_start
from dep_accounts.apple.client import DEPClient
from dep_accounts.apple.dep_errors import (
    THROTTLE_WAIT_LIMIT,
    AccessDeniedError,
    AppleRequestError,
    AppleUnavailableError,
    CursorExhaustedError,
    CursorExpiredError,
    CursorInvalidError,
    TermsNotSignedError,
    ThrottledError,
    TokenRejectedError,
    TokenUnusableError,
)
from dep_accounts.apple.schema import Device


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = sim_start()
    yield running
    running.stop()


@dataclass
class Apple:
    sim: RunningSim
    org_id: str
    server_uuid: str
    credentials: dict[str, str]

    def client(self, credentials: dict[str, str] | None = None, **options: object) -> DEPClient:
        credentials = credentials or self.credentials
        return DEPClient(
            consumer_key=credentials["consumer_key"],
            consumer_secret=credentials["consumer_secret"],
            access_token=credentials["access_token"],
            access_secret=credentials["access_secret"],
            base_url=self.sim.url,
            **{"retry_backoff": 0.01, **options},
        )


@pytest.fixture
def apple(sim: RunningSim) -> Apple:
    sim.control.reset()
    org_id = sim.control.organisation_create(
        "Springfield Schools", org_type="edu", apple_ids=["it.admin@springfield.example"]
    )
    server_uuid = sim.control.server_create(org_id, "Springfield MDM")
    return Apple(sim, org_id, server_uuid, sim.control.token_credentials(server_uuid))


@pytest.fixture
def client(apple: Apple) -> DEPClient:
    return apple.client()


def fetch_all(client: DEPClient, limit: int = 1000) -> tuple[list[Device], list[bool], str]:
    devices, more, cursor = [], [], None
    while True:
        page = client.devices_fetch(cursor=cursor, limit=limit)
        devices += page.devices
        more.append(page.more_to_follow)
        cursor = page.cursor
        if not page.more_to_follow:
            return devices, more, cursor


def test_client_reads_the_account_of_its_mdm_server(apple: Apple, client: DEPClient) -> None:
    account = client.account()

    assert account.server_uuid == apple.server_uuid
    assert account.server_name == "Springfield MDM"
    assert account.admin_id == "it.admin@springfield.example"
    assert (account.org_name, account.org_id, account.org_type) == (
        "Springfield Schools",
        apple.org_id,
        "edu",
    )
    assert account.limit_maximum("/server/devices") == 1000


def test_client_follows_the_session_token_apple_rotates(apple: Apple, client: DEPClient) -> None:
    client.account()
    first = client.session_token
    # Any new /session would now fail, so every call below must ride the rotated sessions.
    apple.sim.control.faults_set("session", [{"count": 50, "status": 401, "body": "UNAUTHORIZED"}])

    tokens = set()
    for _ in range(12):
        apple.sim.control.clock_advance(40)
        client.account()
        tokens.add(client.session_token)

    assert client.session_token != first
    assert len(tokens) >= 3


def test_client_opens_a_new_session_after_apple_ends_an_idle_one(
    apple: Apple, client: DEPClient
) -> None:
    client.account()
    idle = client.session_token
    apple.sim.control.clock_advance(6 * 60)

    client.account()

    assert client.session_token != idle


def test_full_fetch_pages_through_every_device_then_the_cursor_is_exhausted(
    apple: Apple, client: DEPClient
) -> None:
    apple.sim.control.devices_add(apple.server_uuid, 2500)

    devices, more, cursor = fetch_all(client, limit=1000)

    assert more == [True, True, False]
    assert {device.serial_number for device in devices} == apple.sim.control.device_serials(
        apple.server_uuid
    )
    assert all(device.device_assigned_date.tzinfo is not None for device in devices)
    with pytest.raises(CursorExhaustedError):
        client.devices_fetch(cursor=cursor)


def test_sync_after_a_fetch_reports_added_modified_and_deleted_devices(
    apple: Apple, client: DEPClient
) -> None:
    control = apple.sim.control
    kept, recoloured, released = control.devices_add(apple.server_uuid, 3)
    devices, _more, cursor = fetch_all(client)
    added = control.devices_add(apple.server_uuid, 2)
    control.devices_modify([recoloured], color="RED", asset_tag="A-00042")
    control.devices_delete([released])

    page = client.devices_sync(cursor=cursor)

    events = {(device.serial_number, device.op_type) for device in page.devices}
    assert events == {(added[0], "added"), (added[1], "added"), (recoloured, "modified"),
                      (released, "deleted")}  # fmt: skip
    latest = {device.serial_number: device for device in [*devices, *page.devices]}
    current = {serial for serial, device in latest.items() if device.op_type != "deleted"}
    assert current == control.device_serials(apple.server_uuid) == {kept, recoloured, *added}
    assert latest[recoloured].color == "RED"
    assert all(device.op_date is not None for device in page.devices)
    assert page.more_to_follow is False


def test_sync_cursor_older_than_seven_days_has_expired(apple: Apple, client: DEPClient) -> None:
    _devices, _more, cursor = fetch_all(client)
    apple.sim.control.clock_advance(8 * 24 * 3600)

    with pytest.raises(CursorExpiredError):
        client.devices_sync(cursor=cursor)


def test_sync_refuses_a_cursor_apple_never_issued(apple: Apple, client: DEPClient) -> None:
    _devices, _more, cursor = fetch_all(client)

    with pytest.raises(CursorInvalidError):
        client.devices_sync(cursor=cursor[:-2] + "AA")


def test_quoted_error_bodies_like_depsims_are_understood(apple: Apple, client: DEPClient) -> None:
    apple.sim.control.quoted_errors_set(True)

    with pytest.raises(CursorInvalidError) as refusal:
        client.devices_sync(cursor="bm90LWEtY3Vyc29y")

    assert refusal.value.code == "INVALID_CURSOR"


def test_device_details_mark_devices_of_other_servers_not_accessible(
    apple: Apple, client: DEPClient
) -> None:
    (serial,) = apple.sim.control.devices_add(apple.server_uuid, 1)

    details = client.device_details([serial, "C02NOTOURS01"])

    assert details[serial].response_status == "SUCCESS"
    assert details[serial].device.serial_number == serial
    assert details["C02NOTOURS01"].response_status == "NOT_ACCESSIBLE"
    assert details["C02NOTOURS01"].device is None


def test_profiles_are_defined_read_assigned_and_removed(apple: Apple, client: DEPClient) -> None:
    control = apple.sim.control
    first, second = control.devices_add(apple.server_uuid, 2)

    defined = client.profile_define(
        {"profile_name": "Staff", "url": "https://mdm.example/enroll", "devices": [first]}
    )
    profile = client.profile_get(defined.profile_uuid)
    assignment = client.profile_assign(profile_uuid=defined.profile_uuid, serials=[second, "X1"])
    removal = client.profile_remove(serials=[first], profile_uuid=defined.profile_uuid)

    assert len(defined.profile_uuid) == 32
    assert defined.devices == {first: "SUCCESS"}
    assert (profile["profile_name"], profile["profile_uuid"]) == ("Staff", defined.profile_uuid)
    assert assignment.devices == {second: "SUCCESS", "X1": "NOT_ACCESSIBLE"}
    assert assignment.retry_after_seconds is None
    assert removal == {first: "SUCCESS"}
    assert control.device(second)["profile_status"] == "assigned"
    assert control.device(first)["profile_status"] == "removed"


def test_profile_assignment_beyond_apples_rate_is_throttled_per_device(
    apple: Apple, client: DEPClient
) -> None:
    serials = apple.sim.control.devices_add(apple.server_uuid, 5)
    apple.sim.control.assign_limit_set(apple.server_uuid, devices=3, per_seconds=60)
    profile_uuid = client.profile_define({"profile_name": "Staff", "url": "https://mdm.example"})

    assignment = client.profile_assign(profile_uuid=profile_uuid.profile_uuid, serials=serials)

    assert list(assignment.devices.values()) == ["SUCCESS"] * 3 + ["THROTTLED"] * 2
    assert assignment.throttled == serials[3:]
    assert 0 < assignment.retry_after_seconds <= 60


def test_profile_refusals_carry_apples_code(client: DEPClient) -> None:
    with pytest.raises(AppleRequestError) as missing_url:
        client.profile_define({"profile_name": "Staff"})
    with pytest.raises(AppleRequestError) as unknown:
        client.profile_get("0" * 32)

    assert (missing_url.value.status, missing_url.value.code) == (400, "CONFIG_URL_REQUIRED")
    assert (unknown.value.status, unknown.value.code) == (404, "NOT_FOUND")


def test_a_token_downloaded_again_in_abm_makes_the_old_one_rejected(
    apple: Apple, client: DEPClient
) -> None:
    client.account()

    newer = apple.sim.control.token_credentials(apple.server_uuid)

    with pytest.raises(TokenRejectedError) as rejected:
        client.account()
    assert "reset by a newer download in Apple Business Manager" in rejected.value.message
    assert apple.client(newer).account().server_uuid == apple.server_uuid


def test_an_expired_token_is_rejected(apple: Apple) -> None:
    expired = apple.sim.control.token_credentials(
        apple.server_uuid, issued_at=datetime.now(UTC) - timedelta(days=366)
    )

    with pytest.raises(TokenRejectedError):
        apple.client(expired).account()


def test_a_wrong_consumer_secret_is_a_token_file_that_does_not_match(apple: Apple) -> None:
    wrong = {**apple.credentials, "consumer_secret": "CS_" + "0" * 40}

    with pytest.raises(TokenUnusableError) as unusable:
        apple.client(wrong).account()

    assert unusable.value.status == 400
    assert "the token file does not match" in unusable.value.message


def test_terms_not_accepted_stop_a_session_and_a_session_already_open(
    apple: Apple, client: DEPClient
) -> None:
    client.account()
    apple.sim.control.terms_set(apple.org_id, accepted=False)

    with pytest.raises(TermsNotSignedError):
        client.account()
    with pytest.raises(TermsNotSignedError):
        apple.client().account()


ScriptedCall = Callable[[DEPClient], object]


@pytest.mark.parametrize(
    ("endpoint", "fault", "error"),
    [
        ("session", {"status": 401, "body": "UNAUTHORIZED"}, TokenRejectedError),
        ("session", {"status": 403, "body": "ACCESS_DENIED"}, AccessDeniedError),
        ("session", {"status": 403, "body": "T_C_NOT_SIGNED"}, TermsNotSignedError),
        ("account", {"count": 2, "status": 403, "body": "FORBIDDEN"}, AccessDeniedError),
        ("account", {"count": 3, "status": 500, "body": ""}, AppleUnavailableError),
        ("account", {"count": 3, "action": "drop"}, AppleUnavailableError),
        ("account", {"action": "malformed"}, AppleUnavailableError),
        ("account", {"status": 405, "body": ""}, AppleRequestError),
    ],
)
def test_apples_refusals_become_typed_errors(
    apple: Apple, client: DEPClient, endpoint: str, fault: dict, error: type[Exception]
) -> None:
    apple.sim.control.faults_set(endpoint, [fault])

    with pytest.raises(error):
        client.account()


@pytest.mark.parametrize(
    "fault",
    [
        {"count": 1, "status": 401, "body": "UNAUTHORIZED"},
        {"count": 1, "status": 403, "body": "FORBIDDEN"},
        {"count": 2, "status": 500, "body": ""},
        {"count": 2, "status": 429, "body": "TOO_MANY_REQUESTS", "headers": {"Retry-After": "0"}},
        {"count": 2, "action": "drop"},
    ],
)
def test_passing_failures_are_retried_or_reauthenticated(
    apple: Apple, client: DEPClient, fault: dict
) -> None:
    client.account()
    apple.sim.control.faults_set("account", [fault])

    assert client.account().server_uuid == apple.server_uuid


def test_throttling_that_persists_raises_with_apples_wait(apple: Apple, client: DEPClient) -> None:
    apple.sim.control.faults_set(
        "account", [{"count": 3, "status": 429, "headers": {"Retry-After": "1"}}]
    )

    with pytest.raises(ThrottledError) as throttled:
        client.account()

    assert throttled.value.retry_after == 1


def test_a_wait_longer_than_the_client_allows_is_raised_without_sleeping(
    apple: Apple, client: DEPClient
) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(minutes=2), usegmt=True)
    apple.sim.control.faults_set(
        "account", [{"count": 3, "status": 503, "headers": {"Retry-After": later}}]
    )
    started = time.monotonic()

    with pytest.raises(ThrottledError) as throttled:
        client.account()

    assert time.monotonic() - started < 2
    assert 100 < throttled.value.retry_after <= 120
    assert apple.sim.control.state()["faults_pending"] == {"account": 2}


def test_apple_answering_too_slowly_is_unavailable(apple: Apple) -> None:
    client = apple.client(timeout=(2, 0.3))
    client.account()
    apple.sim.control.faults_set("account", [{"count": 3, "action": "timeout", "seconds": 1}])

    with pytest.raises(AppleUnavailableError) as unavailable:
        client.account()

    assert "did not answer GET /account in time" in unavailable.value.message


def test_an_unreachable_apple_is_unavailable() -> None:
    with sim_start() as stopped:
        url = stopped.url
    client = DEPClient(
        consumer_key="CK_x", consumer_secret="CS_x", access_token="AT_x", access_secret="AS_x",
        base_url=url, retry_backoff=0.01,
    )  # fmt: skip

    with pytest.raises(AppleUnavailableError):
        client.account()


def test_secrets_never_show_in_repr_or_errors(apple: Apple) -> None:
    wrong = {**apple.credentials, "consumer_secret": "CS_" + "1" * 40}
    client = apple.client(wrong)

    with pytest.raises(TokenUnusableError) as rejected:
        client.account()

    assert repr(client) == f"DEPClient(base_url={apple.sim.url!r})"
    shown = repr(client) + str(rejected.value) + repr(rejected.value)
    assert not any(secret in shown for secret in wrong.values())


JSON = "application/json;charset=UTF8"


# Found by fuzzing (tests/test_fuzz_dep_client.py): each answer below raised something other
# than a DEPError, or gave a result whose fields were not the types they promise.
def test_json_nested_deeper_than_python_recurses_is_not_apples_answer(
    apple: Apple, client: DEPClient
) -> None:
    deep = {"status": 200, "body": "[" * 100_000, "content_type": JSON}
    apple.sim.control.faults_set("account", [deep])

    with pytest.raises(AppleUnavailableError, match="not JSON"):
        client.account()


@pytest.mark.parametrize(
    "device",
    [
        {"serial_number": None},
        {"serial_number": ["C02XK1JHJG5H"]},
        {"serial_number": "C02XK1JHJG5H", "model": {"name": "MacBook Air"}},
        {"serial_number": "C02XK1JHJG5H", "op_type": True},
    ],
)
def test_a_device_record_of_the_wrong_shape_is_an_unexpected_answer(
    apple: Apple, client: DEPClient, device: dict
) -> None:
    body = json.dumps({"devices": [device], "cursor": "MTY4", "more_to_follow": False})
    apple.sim.control.faults_set(
        "server_devices", [{"status": 200, "body": body, "content_type": JSON}]
    )

    with pytest.raises(AppleUnavailableError, match="unexpected shape"):
        client.devices_fetch()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"server_uuid": None}, AppleUnavailableError),
        ({"server_uuid": "A1", "org_name": ["Springfield"]}, AppleUnavailableError),
        ({"server_uuid": "A1", "urls": [{"uri": "/x", "limit": {"maximum": "many"}}]}, None),
        ({"server_uuid": "A1", "org_id": 1234567}, None),
    ],
)
def test_an_account_answer_of_the_wrong_shape_is_refused_or_read_as_text(
    apple: Apple, client: DEPClient, answer: dict, error: type[Exception] | None
) -> None:
    if answer.get("urls"):
        error = AppleUnavailableError
    fault = {"status": 200, "body": json.dumps(answer), "content_type": JSON}
    apple.sim.control.faults_set("account", [fault])

    if error is not None:
        with pytest.raises(error, match="unexpected shape"):
            client.account()
    else:
        assert client.account().org_id == "1234567"


@pytest.mark.parametrize(
    ("answer", "wait"),
    [
        ({"devices": {"C02XK1JHJG5H": "THROTTLED"}, "retry_after_seconds": -5}, 0),
        ({"devices": {"C02XK1JHJG5H": "THROTTLED"}, "retry_after_seconds": "5"}, None),
        ({"devices": {"C02XK1JHJG5H": ["SUCCESS"]}}, None),
        ({"devices": "C02XK1JHJG5H"}, None),
    ],
)
def test_a_profile_assignment_of_the_wrong_shape_is_refused_or_waits_no_less_than_zero(
    apple: Apple, client: DEPClient, answer: dict, wait: int | None
) -> None:
    fault = {"status": 200, "body": json.dumps(answer), "content_type": JSON}
    apple.sim.control.faults_set("profile_assign", [fault])

    if wait is None:
        with pytest.raises(AppleUnavailableError, match="unexpected shape"):
            client.profile_assign(profile_uuid="88A6E7E1", serials=["C02XK1JHJG5H"])
    else:
        assignment = client.profile_assign(profile_uuid="88A6E7E1", serials=["C02XK1JHJG5H"])
        assert assignment.retry_after_seconds == wait


def test_a_retry_after_of_centuries_is_taken_as_a_day(apple: Apple, client: DEPClient) -> None:
    forever = {"count": 3, "status": 429, "headers": {"Retry-After": "99999999999999999999"}}
    apple.sim.control.faults_set("account", [forever])

    with pytest.raises(ThrottledError) as throttled:
        client.account()

    assert throttled.value.retry_after == THROTTLE_WAIT_LIMIT
