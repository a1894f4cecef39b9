"""applesim's Apps and Books service and pages, and its Push Certificates Portal, over HTTP as
an admin's browser or an MDM would use them."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest
import requests

from applesim.testing import RunningSim, SimControlError, sim_start
from dep_accounts.apple.apns import (
    push_certificate_parse,
    push_certificate_request_build,
    push_key_generate,
    vendor_certificate_load,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = sim_start()
    yield running
    running.stop()


@pytest.fixture
def org_id(sim: RunningSim) -> str:
    sim.control.reset()
    return sim.control.organisation_create("Springfield Schools")


def test_abm_offers_a_download_per_location_that_issues_a_vpptoken(
    sim: RunningSim, org_id: str
) -> None:
    browser = requests.Session()
    added = browser.post(sim.url + "/abm/locations", data={"location_name": "East Campus"})
    assert "Added location East Campus." in added.text
    sim.control.vpp_location_create(org_id, "West Campus")
    page = browser.get(sim.url + "/abm/").text
    section = page[page.index('id="apps-and-books"') :]
    assert "East Campus" in section and "West Campus" in section
    actions = re.findall(r'action="(/abm/locations/\d+/token)"', section)
    assert len(actions) == 2
    download = browser.post(sim.url + actions[0])
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="sToken_for_East_Campus.vpptoken"'
    )
    fields = json.loads(base64.b64decode(download.content))
    assert set(fields) == {"token", "expDate", "orgName"}
    assert fields["orgName"] == "Springfield Schools"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", fields["expDate"])


def test_another_organisations_apple_id_cannot_download_the_token(
    sim: RunningSim, org_id: str
) -> None:
    uid = sim.control.vpp_location_create(org_id, "East Campus")
    sim.control.organisation_create("Shelbyville")
    with pytest.raises(SimControlError, match="SIGN_IN_REQUIRED"):
        sim.control.vpp_token_download(uid)
    refused = requests.post(sim.url + f"/abm/locations/{uid}/token")
    assert "Sign in with an Apple ID of this location" in refused.text


def test_the_service_answers_apples_error_numbers(sim: RunningSim, org_id: str) -> None:
    uid = sim.control.vpp_location_create(org_id, "East Campus")
    bearer = {"Authorization": "Bearer " + sim.control.vpp_token_download(uid).decode()}
    base = sim.url + "/mdm/v2/"

    def error(response: requests.Response) -> tuple[int, int]:
        return response.status_code, response.json()["errorNumber"]

    assert error(requests.get(base + "client/config")) == (401, 9722)
    assert error(requests.put(base + "client/config", headers=bearer)) == (405, 9726)
    text = {**bearer, "Content-Type": "text/plain"}
    assert error(requests.post(base + "client/config", headers=text, data="{}")) == (415, 9727)
    half = {"mdmInfo": {"id": "x", "name": "y"}}
    assert error(requests.post(base + "client/config", headers=bearer, json=half)) == (400, 9723)
    long_id = {"mdmInfo": {"id": "x" * 101, "name": "y", "metadata": "z"}}
    assert error(requests.post(base + "client/config", headers=bearer, json=long_id)) == (400, 9724)
    page = requests.get(base + "assets", headers=bearer, params={"pageIndex": 3})
    assert error(page) == (400, 9650)
    numbers = {
        code["errorNumber"] for code in requests.get(base + "service/config").json()["errorCodes"]
    }
    assert {9621, 9625, 9646, 9722} <= numbers


def test_the_push_certificates_portal_creates_renews_and_downloads(
    sim: RunningSim, org_id: str
) -> None:
    vendor = vendor_certificate_load(sim.control.push_vendor_issue("Springfield MDM Vendor"))
    key = push_key_generate(organisation="Springfield Schools")
    request = push_certificate_request_build(csr_pem=key.csr_pem, vendor=vendor)
    browser = requests.Session()
    assert 'name="apple_id"' in browser.get(sim.url + "/pushcert/").text
    browser.post(sim.url + "/pushcert/sign-in", data={"apple_id": "Admin@Springfield.example"})

    created = browser.post(sim.url + "/pushcert/create", files={"request": ("req.txt", request)})
    assert "Created." in created.text
    topic = re.search(r'id="topic">([^<]+)<', created.text)[1]
    download = browser.get(sim.url + f"/pushcert/certificates/{topic}/download")
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="MDM_Springfield MDM Vendor_Certificate.pem"'
    )
    first = push_certificate_parse(download.content)
    assert first.topic == topic

    renew_page = browser.get(sim.url + f"/pushcert/certificates/{topic}/renew")
    assert 'name="request"' in renew_page.text
    renewed = browser.post(renew_page.url, files={"request": ("req.txt", request)})
    assert "Renewed." in renewed.text
    again = push_certificate_parse(
        browser.get(sim.url + f"/pushcert/certificates/{topic}/download").content
    )
    assert again.topic == topic and again.serial_number != first.serial_number
    listing = browser.get(sim.url + "/pushcert/").text
    assert listing.count("data-topic=") == 1

    refused = browser.post(sim.url + "/pushcert/create", files={"request": ("x", b"noise")})
    assert "This is not a push certificate request" in refused.text
    assert sim.control.push_certificates("admin@springfield.example")[0]["topic"] == topic


def test_the_portal_shows_one_apple_ids_certificates_only(sim: RunningSim, org_id: str) -> None:
    vendor = vendor_certificate_load(sim.control.push_vendor_issue("Vendor"))
    key = push_key_generate(organisation="Springfield Schools")
    request = push_certificate_request_build(csr_pem=key.csr_pem, vendor=vendor)
    topic = push_certificate_parse(
        sim.control.push_certificate_create("a@example.com", request)
    ).topic
    browser = requests.Session()
    browser.post(sim.url + "/pushcert/sign-in", data={"apple_id": "b@example.com"})
    assert topic not in browser.get(sim.url + "/pushcert/").text
    assert browser.get(sim.url + f"/pushcert/certificates/{topic}/download").status_code == 404
