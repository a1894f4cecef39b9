"""The DEP client against Apple's answers as other MDM projects recorded them, served verbatim by
applesim's fault scripts over real HTTP. docs/apple-answers.md names the public source of each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from applesim.testing import RunningSim, sim_start
from dep_accounts.apple.client import DEPClient
from dep_accounts.apple.dep_errors import (
    AccessDeniedError,
    CursorExhaustedError,
    CursorExpiredError,
    CursorInvalidError,
    DEPError,
    TermsNotSignedError,
    TokenRejectedError,
    TokenUnusableError,
)

JSON = "application/json;charset=UTF8"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = sim_start()
    yield running
    running.stop()


@pytest.fixture
def client(sim: RunningSim) -> DEPClient:
    sim.control.reset()
    org_id = sim.control.organisation_create("Springfield Schools")
    server_uuid = sim.control.server_create(org_id, "Springfield MDM")
    credentials = sim.control.token_credentials(server_uuid)
    client = DEPClient(
        consumer_key=credentials["consumer_key"],
        consumer_secret=credentials["consumer_secret"],
        access_token=credentials["access_token"],
        access_secret=credentials["access_secret"],
        base_url=sim.url,
        retry_backoff=0.01,
    )
    client.account()  # A session is open: faults on API calls meet a live session.
    return client


@dataclass(frozen=True)
class Refusal:
    """One refusal as Apple sends it, on /session or on an API call."""

    source: str
    endpoint: str
    status: int
    body: str
    error: type[DEPError]
    says: str


REFUSALS = [
    # A token reset by a newer download in ABM.
    Refusal("fleet#43916", "session", 403, '"token_rejected"', TokenRejectedError, "newer"),
    Refusal("fleet#47700", "session", 403, '"signature_invalid"', TokenRejectedError, "newer"),
    Refusal("godep account_test", "session", 401, '"token_rejected"\n', TokenRejectedError, ""),
    Refusal("fleet#43916", "account", 403, '"token_rejected"', TokenRejectedError, "newer"),
    Refusal("fleet#47700", "account", 403, "signature_invalid\n", TokenRejectedError, ""),
    Refusal("Apple legacy error codes", "session", 401, "UNAUTHORIZED", TokenRejectedError, ""),
    # OAuth problems: keys that do not match, a malformed token, expired credentials.
    Refusal(
        "fleet#11416", "session", 400, "oauth_problem_adviceBad Request", TokenUnusableError,
        "the token file does not match",
    ),
    Refusal(
        "petarov apple-mdm-clients", "session", 401, "oauth_problem_adviceUnauthorized",
        TokenUnusableError, "the token file does not match",
    ),
    Refusal(
        "fleet#11416", "session", 403, "token_expiredForbidden", TokenUnusableError, "expired"
    ),
    # Terms, access, cursors: quoted or bare, with or without a newline or a prefix.
    Refusal(
        "fleet#33405", "session", 403, "DEP auth error: 403 Forbidden: T_C_NOT_SIGNED",
        TermsNotSignedError, "terms",
    ),
    Refusal("depsim", "account", 403, '"T_C_NOT_SIGNED"\n', TermsNotSignedError, "terms"),
    Refusal("depsim", "session", 403, "ACCESS_DENIED", AccessDeniedError, "MDM server"),
    Refusal("everest", "devices_sync", 400, '"EXPIRED_CURSOR"\n', CursorExpiredError, ""),
    Refusal("everest", "server_devices", 400, "INVALID_CURSOR", CursorInvalidError, ""),
    Refusal("nanodep", "server_devices", 400, '"EXHAUSTED_CURSOR"', CursorExhaustedError, ""),
]  # fmt: skip


def _call(client: DEPClient, endpoint: str) -> object:
    if endpoint == "session":
        client.session_token = None
        return client.account()
    if endpoint == "account":
        return client.account()
    if endpoint == "devices_sync":
        return client.devices_sync(cursor="MTY1NzE3NTI2My0w")
    return client.devices_fetch(cursor="MTY1NzE3NTI2My0w")


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: f"{r.endpoint}-{r.body.strip()}")
def test_apples_recorded_refusals_are_classified_by_their_code(
    sim: RunningSim, client: DEPClient, refusal: Refusal
) -> None:
    sim.control.faults_set(refusal.endpoint, [{"status": refusal.status, "body": refusal.body}])

    with pytest.raises(refusal.error) as refused:
        _call(client, refusal.endpoint)

    assert refused.value.status == refusal.status
    assert refusal.says in refused.value.message
    assert refusal.body.strip().strip('"') not in ("", refused.value.message)


def _page(client: DEPClient, sim: RunningSim, answer: dict) -> object:
    sim.control.faults_set(
        "server_devices", [{"status": 200, "body": json.dumps(answer), "content_type": JSON}]
    )
    return client.devices_fetch()


@pytest.mark.parametrize(
    ("more_to_follow", "expected"),
    [("false", False), ("true", True), (False, False), (True, True)],
)
def test_more_to_follow_is_read_as_a_boolean_or_as_apples_documented_string(
    sim: RunningSim, client: DEPClient, more_to_follow: object, expected: bool
) -> None:
    answer = {"devices": [], "cursor": "MTY1NzE3NTI2My0w", "more_to_follow": more_to_follow}

    assert _page(client, sim, answer).more_to_follow is expected


def test_a_migration_deadline_and_a_deleted_record_released_by_replacement_are_kept(
    sim: RunningSim, client: DEPClient
) -> None:
    # Shapes from Apple's device schema (protocol v8+) and petarov's sync fixtures.
    answer = {
        "devices": [
            {"serial_number": "C02MIGRATE01", "model": "MacBook Air", "os": "OSX",
             "device_family": "Mac", "profile_status": "assigned",
             "mdm_migration_deadline": "2026-09-30T00:00:00Z"},
            {"serial_number": "F2LREPLACED1", "op_type": "deleted",
             "op_date": "2025-01-17T11:02:21Z", "released_by_replacement": True},
            {"serial_number": "F2LDELETED01", "op_type": "deleted",
             "op_date": "2025-01-17T11:02:22Z"},
        ],
        "cursor": "MTY1NzE3NTI2My0w",
        "more_to_follow": "false",
        "fetched_until": "2025-01-17T11:02:23Z",
    }  # fmt: skip

    migrating, replaced, deleted = _page(client, sim, answer).devices

    assert migrating.mdm_migration_deadline == datetime(2026, 9, 30, tzinfo=UTC)
    assert (replaced.op_type, replaced.released_by_replacement) == ("deleted", True)
    assert (deleted.op_type, deleted.released_by_replacement) == ("deleted", False)
    assert deleted.model == "" and deleted.op_date == datetime(2025, 1, 17, 11, 2, 22, tzinfo=UTC)


def test_device_details_keep_not_found_beside_not_accessible(
    sim: RunningSim, client: DEPClient
) -> None:
    answer = {
        "devices": {
            "C02OURS00001": {"serial_number": "C02OURS00001", "model": "iMac",
                             "response_status": "SUCCESS"},
            "C02OTHERS001": {"response_status": "NOT_ACCESSIBLE"},
            "C02UNKNOWN01": {"response_status": "NOT_FOUND"},
        }
    }  # fmt: skip
    sim.control.faults_set(
        "devices", [{"status": 200, "body": json.dumps(answer), "content_type": JSON}]
    )

    details = client.device_details(list(answer["devices"]))

    assert details["C02OURS00001"].device.model == "iMac"
    assert details["C02OTHERS001"].response_status == "NOT_ACCESSIBLE"
    assert details["C02UNKNOWN01"].response_status == "NOT_FOUND"
    assert details["C02UNKNOWN01"].device is None


def test_throttled_devices_and_apples_wait_are_read_from_an_assignment(
    sim: RunningSim, client: DEPClient
) -> None:
    answer = {
        "profile_uuid": "9A2B1C3D4E5F60718293A4B5C6D7E8F9",
        "devices": {"C02OURS00001": "SUCCESS", "C02OURS00002": "THROTTLED"},
        "retry_after_seconds": 86400,
    }
    sim.control.faults_set(
        "profile_assign", [{"status": 200, "body": json.dumps(answer), "content_type": JSON}]
    )

    assignment = client.profile_assign(
        profile_uuid=answer["profile_uuid"], serials=list(answer["devices"])
    )

    assert assignment.throttled == ["C02OURS00002"]
    assert assignment.retry_after_seconds == 86400
