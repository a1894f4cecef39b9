"""applesim over a real socket: Apple's side of the DEP web service, ABM, and the control API."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from requests_oauthlib import OAuth1
from urllib3.util import SKIP_HEADER

from applesim.testing import RunningSim, SimControlError, sim_start

HEADERS = {"User-Agent": "applesim-tests/1", "X-Server-Protocol-Version": "7"}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = sim_start()
    yield running
    running.stop()


@dataclass
class Org:
    sim: RunningSim
    org_id: str
    server_uuid: str
    credentials: dict[str, str]

    def session(self, credentials: dict[str, str] | None = None, **oauth: str) -> requests.Response:
        credentials = credentials or self.credentials
        auth = OAuth1(
            credentials["consumer_key"],
            client_secret=credentials["consumer_secret"],
            resource_owner_key=credentials["access_token"],
            resource_owner_secret=credentials["access_secret"],
            signature_method="HMAC-SHA1",
            **oauth,
        )
        return requests.get(self.sim.url + "/session", auth=auth, headers=HEADERS, timeout=10)

    def session_token(self) -> str:
        response = self.session()
        assert response.status_code == 200, response.text
        return response.json()["auth_session_token"]

    def call(
        self, method: str, path: str, token: str, body: object = None, **headers: str
    ) -> requests.Response:
        return requests.request(
            method,
            self.sim.url + path,
            json=body,
            headers={**HEADERS, "X-ADM-Auth-Session": token, **headers},
            timeout=10,
        )


@pytest.fixture
def org(sim: RunningSim) -> Org:
    sim.control.reset()
    org_id = sim.control.organisation_create(
        "Springfield Schools",
        org_type="edu",
        apple_ids=["it.admin@springfield.example", "deputy@springfield.example"],
    )
    server_uuid = sim.control.server_create(org_id, "Springfield MDM")
    return Org(sim, org_id, server_uuid, sim.control.token_credentials(server_uuid))


def certificate_new() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdmportal-dep-1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=10))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_session_opens_with_a_correctly_signed_request(org: Org) -> None:
    response = org.session()

    assert response.status_code == 200
    assert response.json()["auth_session_token"]


def test_session_with_a_wrong_consumer_secret_gets_apples_oauth_problem(org: Org) -> None:
    response = org.session({**org.credentials, "consumer_secret": "CS_" + "0" * 40})

    # fleetdm/fleet#11416: Apple's OAuth layer answers keys that do not match with this.
    assert response.status_code == 400
    assert response.text == "oauth_problem_adviceBad Request"
    assert response.headers["Content-Type"] == "text/plain;Charset=UTF8"


def test_session_with_an_unknown_consumer_key_is_unauthorized(org: Org) -> None:
    response = org.session({**org.credentials, "consumer_key": "CK_" + "0" * 96})

    assert (response.status_code, response.text) == (401, "UNAUTHORIZED")


def test_session_with_a_reused_nonce_is_unauthorized(org: Org) -> None:
    signed = {"nonce": "applesimtestnonce0001", "timestamp": str(int(time.time()))}

    first = org.session(**signed)
    second = org.session(**signed)

    assert first.status_code == 200
    assert (second.status_code, second.text) == (401, "UNAUTHORIZED")


def test_session_without_a_user_agent_is_refused(org: Org) -> None:
    # urllib3 adds its own User-Agent unless told to skip the header.
    no_user_agent = {**HEADERS, "User-Agent": SKIP_HEADER}

    response = requests.get(org.sim.url + "/session", headers=no_user_agent, timeout=10)

    assert (response.status_code, response.text) == (400, "USER_AGENT_MISSING")


def test_session_is_refused_until_the_terms_are_accepted(org: Org) -> None:
    org.sim.control.terms_set(org.org_id, accepted=False)

    response = org.session()

    assert (response.status_code, response.text) == (403, "T_C_NOT_SIGNED")


def test_endpoints_need_a_session(org: Org) -> None:
    response = org.call("GET", "/account", token="")

    assert (response.status_code, response.text) == (401, "UNAUTHORIZED")


def test_account_describes_the_server_and_its_organisation(org: Org) -> None:
    account = org.call("GET", "/account", org.session_token()).json()

    assert account["server_uuid"] == org.server_uuid
    assert account["admin_id"] == "it.admin@springfield.example"
    assert (account["org_name"], account["org_type"], account["org_version"]) == (
        "Springfield Schools",
        "edu",
        "v2",
    )
    limits = {url["uri"]: url.get("limit") for url in account["urls"]}
    assert limits["/server/devices"] == {"default": 100, "maximum": 1000}


def test_old_protocol_versions_see_neither_org_fields_nor_ipados(org: Org) -> None:
    org.sim.control.devices_add(org.server_uuid, 200)
    token = org.session_token()

    account = org.call("GET", "/account", token, **{"X-Server-Protocol-Version": "2"}).json()
    devices = org.call(
        "POST", "/server/devices", token, {"limit": 200}, **{"X-Server-Protocol-Version": "2"}
    ).json()["devices"]

    assert "org_name" not in account
    assert {device["os"] for device in devices} <= {"iOS", "OSX", "tvOS", "visionOS"}


def test_session_rotates_on_every_tenth_request_and_the_old_value_has_a_grace(org: Org) -> None:
    token = org.session_token()
    answers = [org.call("GET", "/account", token) for _ in range(10)]
    rotated = answers[-1].headers["X-ADM-Auth-Session"]

    assert all("X-ADM-Auth-Session" not in answer.headers for answer in answers[:-1])
    assert org.call("GET", "/account", token).status_code == 200
    org.sim.control.clock_advance(31)
    assert org.call("GET", "/account", token).status_code == 401
    assert org.call("GET", "/account", rotated).status_code == 200


def test_session_rotates_once_it_is_two_minutes_old(org: Org) -> None:
    token = org.session_token()
    org.sim.control.clock_advance(121)

    answer = org.call("GET", "/account", token)

    assert answer.headers["X-ADM-Auth-Session"] != token


def test_session_ends_after_five_idle_minutes(org: Org) -> None:
    token = org.session_token()
    org.sim.control.clock_advance(301)

    assert org.call("GET", "/account", token).status_code == 401


def test_fetch_pages_default_to_100_and_are_capped_at_1000(org: Org) -> None:
    org.sim.control.devices_add(org.server_uuid, 1500)
    token = org.session_token()

    default = org.call("POST", "/server/devices", token, {}).json()
    capped = org.call("POST", "/server/devices", token, {"limit": 5000}).json()

    assert len(default["devices"]) == 100
    assert len(capped["devices"]) == 1000
    assert capped["more_to_follow"] is True


def test_sync_needs_a_cursor(org: Org) -> None:
    response = org.call("POST", "/devices/sync", org.session_token(), {})

    assert (response.status_code, response.text) == (400, "CURSOR_REQUIRED")


def test_a_cursor_of_another_server_is_invalid(org: Org) -> None:
    other_uuid = org.sim.control.server_create(org.org_id, "Other MDM")
    other = Org(org.sim, org.org_id, other_uuid, org.sim.control.token_credentials(other_uuid))
    cursor = org.call("POST", "/server/devices", org.session_token(), {}).json()["cursor"]

    response = other.call("POST", "/devices/sync", other.session_token(), {"cursor": cursor})

    assert (response.status_code, response.text) == (400, "INVALID_CURSOR")


def test_moving_a_device_deletes_it_for_one_server_and_adds_it_to_the_other(org: Org) -> None:
    control = org.sim.control
    serial = control.devices_add(org.server_uuid, 1)[0]
    other_uuid = control.server_create(org.org_id, "Other MDM")
    token = org.session_token()
    cursor = org.call("POST", "/server/devices", token, {}).json()["cursor"]

    control.devices_modify([serial], server_uuid=other_uuid)
    events = org.call("POST", "/devices/sync", token, {"cursor": cursor}).json()["devices"]

    assert [(event["serial_number"], event["op_type"]) for event in events] == [(serial, "deleted")]
    assert control.device_serials(other_uuid) == {serial}


def test_profile_definitions_are_validated_with_apples_codes(org: Org) -> None:
    token = org.session_token()
    cases = [
        ({"url": "https://mdm.example/enroll"}, "CONFIG_NAME_REQUIRED"),
        ({"profile_name": "x" * 126, "url": "https://mdm.example"}, "CONFIG_NAME_INVALID"),
        ({"profile_name": "Staff"}, "CONFIG_URL_REQUIRED"),
        (
            {"profile_name": "Staff", "url": "https://mdm.example", "is_mdm_removable": False},
            "FLAGS_INVALID",
        ),
    ]

    refusals = [org.call("POST", "/profile", token, body) for body, _code in cases]

    assert [(r.status_code, r.text) for r in refusals] == [(400, code) for _body, code in cases]


def test_faults_answer_in_order_then_normal_behaviour_resumes(org: Org) -> None:
    token = org.session_token()
    org.sim.control.faults_set(
        "account",
        [
            {"count": 2, "status": 503, "body": "UNAVAILABLE", "headers": {"Retry-After": "2"}},
            {"action": "malformed"},
        ],
    )

    answers = [org.call("GET", "/account", token) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [503, 503, 200, 200]
    assert answers[0].headers["Retry-After"] == "2"
    with pytest.raises(ValueError):
        answers[2].json()
    assert answers[3].json()["server_uuid"] == org.server_uuid


def test_a_dropped_connection_fault_closes_without_an_answer(org: Org) -> None:
    org.sim.control.faults_set("account", [{"action": "drop"}])

    with pytest.raises(requests.ConnectionError):
        org.call("GET", "/account", org.session_token())


def test_faults_for_unknown_endpoints_are_refused(org: Org) -> None:
    with pytest.raises(SimControlError) as refusal:
        org.sim.control.faults_set("nowhere", [{"status": 500}])

    assert refusal.value.code == "ENDPOINT_INVALID"


def test_token_download_revokes_the_previous_token_and_records_the_apple_id(org: Org) -> None:
    org.sim.control.sign_in("deputy@springfield.example", org_id=org.org_id)

    token = org.session_token()
    newer = org.sim.control.token_credentials(org.server_uuid)

    # fleetdm/fleet#43916: a reset token gets 403 and a quoted code, on /session and API calls.
    assert (org.session().status_code, org.session().text) == (403, '"token_rejected"')
    answer = org.call("GET", "/account", token)
    assert (answer.status_code, answer.text) == (403, '"token_rejected"')
    assert org.session(newer).status_code == 200
    org.sim.control.reset_token_code_set("signature_invalid")
    assert (org.session().status_code, org.session().text) == (403, '"signature_invalid"')
    assert org.sim.control.server(org.server_uuid)["admin_id"] == "deputy@springfield.example"


def test_token_download_is_an_smime_file_for_the_uploaded_public_key(org: Org) -> None:
    org.sim.control.public_key_upload(org.server_uuid, certificate_new())

    p7m = org.sim.control.token_download(org.server_uuid, validity_days=30)

    headers, _blank, body = p7m.partition(b"\n\n")
    assert headers.splitlines()[0] == (
        b'Content-Type: application/pkcs7-mime; name="smime.p7m"; smime-type=enveloped-data'
    )
    assert body.startswith(b"MIAGCSqGSIb3DQEHA6CAMIACAQAx")


def test_token_download_needs_a_public_key(org: Org) -> None:
    with pytest.raises(SimControlError) as refusal:
        org.sim.control.token_download(org.server_uuid)

    assert refusal.value.code == "PUBLIC_KEY_REQUIRED"


def test_public_key_upload_refuses_what_is_not_a_certificate(org: Org) -> None:
    with pytest.raises(SimControlError) as refusal:
        org.sim.control.public_key_upload(org.server_uuid, b"-----BEGIN NONSENSE-----")

    assert refusal.value.code == "PUBLIC_KEY_INVALID"


def test_abm_download_token_asks_for_confirmation_then_serves_the_file(org: Org) -> None:
    browser = requests.Session()
    server_page = f"{org.sim.url}/abm/servers/{org.server_uuid}"
    upload = browser.post(
        server_page + "/public-key",
        files={"public_key": ("portal.pem", certificate_new(), "application/x-pem-file")},
        timeout=10,
    )

    confirmation = browser.post(server_page + "/token", data={"validity_days": "10"}, timeout=10)
    download = browser.post(
        server_page + "/token/confirm", data=confirm_form(confirmation.text), timeout=10
    )

    assert "Public key uploaded." in upload.text
    assert "Downloading a new server token will reset your existing one" in confirmation.text
    assert ">Confirm</button>" in confirmation.text
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Springfield_MDM_Token_')
    assert disposition.endswith('_smime.p7m"')
    assert org.session().status_code == 403


def confirm_form(warning_page: str) -> dict[str, str]:
    """The fields of the Confirm form on ABM's warning page."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', warning_page))


def abm_token_download(server_page: str, validity_days: str = "10") -> requests.Response:
    """Download Token, then Confirm on the warning page, as an admin does."""
    warning = requests.post(
        server_page + "/token", data={"validity_days": validity_days}, timeout=10
    )
    return requests.post(
        server_page + "/token/confirm", data=confirm_form(warning.text), timeout=10
    )


def latest_token_id(org: Org) -> int | None:
    latest = org.sim.server.simulator.store.server_token_latest(org.server_uuid)
    return None if latest is None else latest["id"]


def test_abm_confirm_downloads_once_and_a_second_click_resets_nothing(org: Org) -> None:
    server_page = f"{org.sim.url}/abm/servers/{org.server_uuid}"
    org.sim.control.public_key_upload(org.server_uuid, certificate_new())
    warning = requests.post(server_page + "/token", data={"validity_days": "10"}, timeout=10)
    first = requests.post(
        server_page + "/token/confirm", data=confirm_form(warning.text), timeout=10
    )
    issued = latest_token_id(org)

    second = requests.post(
        server_page + "/token/confirm", data=confirm_form(warning.text), timeout=10
    )

    assert first.headers["Content-Disposition"].startswith("attachment;")
    assert 'id="download-done"' in warning.text
    assert second.url.startswith(server_page)
    assert "This token was already downloaded on " in second.text
    assert "nothing was reset" in second.text
    assert "Last downloaded on " in second.text
    assert latest_token_id(org) == issued
    again = abm_token_download(server_page)
    assert again.headers["Content-Disposition"].startswith("attachment;")
    assert latest_token_id(org) != issued


def test_abm_confirm_without_the_warning_page_resets_nothing(org: Org) -> None:
    server_page = f"{org.sim.url}/abm/servers/{org.server_uuid}"
    org.sim.control.public_key_upload(org.server_uuid, certificate_new())
    before = latest_token_id(org)

    answer = requests.post(server_page + "/token/confirm", data={"validity_days": "10"}, timeout=10)

    assert "Click Download Token and confirm the warning" in answer.text
    assert latest_token_id(org) == before


def test_abm_shows_why_a_public_key_was_refused(org: Org) -> None:
    server_page = f"{org.sim.url}/abm/servers/{org.server_uuid}"

    page = requests.post(
        server_page + "/public-key",
        files={"public_key": ("notes.pem", b"not a certificate", "text/plain")},
        timeout=10,
    )

    assert page.url.startswith(server_page)
    assert "The file is not a PEM or DER X.509 certificate." in page.text


def test_abm_apple_id_switch_decides_whose_token_download_it_is(org: Org) -> None:
    requests.post(
        org.sim.url + "/abm/sign-in", data={"apple_id": "deputy@springfield.example"}, timeout=10
    )
    org.sim.control.public_key_upload(org.server_uuid, certificate_new())

    abm_token_download(f"{org.sim.url}/abm/servers/{org.server_uuid}", validity_days="1")

    assert org.sim.control.server(org.server_uuid)["admin_id"] == "deputy@springfield.example"


def test_abm_pages_escape_what_users_typed(org: Org) -> None:
    requests.post(
        org.sim.url + "/abm/servers", data={"server_name": "<script>alert(1)</script>"}, timeout=10
    )

    page = requests.get(org.sim.url + "/abm/", timeout=10).text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Management Services" in page


def test_abm_hides_servers_of_another_organisation(org: Org) -> None:
    org.sim.control.organisation_create("Shelbyville Corp", apple_ids=["boss@shelbyville.example"])

    page = requests.get(f"{org.sim.url}/abm/servers/{org.server_uuid}", timeout=10)

    assert page.status_code == 403


def test_state_survives_a_restart_but_sessions_do_not(tmp_path) -> None:
    state_path = str(tmp_path / "applesim.sqlite3")
    with sim_start(state_path=state_path) as first:
        org_id = first.control.organisation_create("Persistent Org")
        server_uuid = first.control.server_create(org_id, "Persistent MDM")
        credentials = first.control.token_credentials(server_uuid)
        serials = set(first.control.devices_add(server_uuid, 50))
        before = Org(first, org_id, server_uuid, credentials)
        token = before.session_token()

    with sim_start(state_path=state_path) as second:
        after = Org(second, org_id, server_uuid, credentials)

        assert second.control.device_serials(server_uuid) == serials
        assert after.call("GET", "/account", token).status_code == 401
        assert after.session().status_code == 200
