"""Apps and Books content tokens: the .vpptoken file, and the v2 client against applesim."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from applesim.testing import RunningSim, sim_start
from dep_accounts.apple.apns import push_key_generate
from dep_accounts.apple.file_kinds import FileKind
from dep_accounts.apple.keypair import key_pair_generate
from dep_accounts.apple.vpp import (
    CONTENT_TOKEN_MAX_BYTES,
    ContentTokenDamagedError,
    ContentTokenExpiredError,
    ContentTokenTooLargeError,
    WrongFileKindError,
    content_token_check_usable,
    content_token_decode,
)
from dep_accounts.apple.vpp_client import (
    AppsBooksClient,
    AppsBooksRateLimitedError,
    AppsBooksTokenExpiredError,
    AppsBooksTokenInvalidError,
    AppsBooksTokenRevokedError,
    AppsBooksUnavailableError,
    MdmInfo,
)

OURS = MdmInfo(id="5f0c6a5e-portal", name="mdmportal", metadata="mdm.example.com")


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = sim_start()
    yield running
    running.stop()


@dataclass
class Location:
    sim: RunningSim
    org_id: str
    uid: str
    waits: list[float]

    def token(self, **kwargs: object) -> bytes:
        return self.sim.control.vpp_token_download(self.uid, **kwargs)

    def client(self, content: bytes, **kwargs: object) -> AppsBooksClient:
        return AppsBooksClient(
            content_token=content_token_decode(content),
            base_url=self.sim.url + "/mdm/v2",
            sleep=self.waits.append,
            **kwargs,
        )


@pytest.fixture
def location(sim: RunningSim) -> Location:
    sim.control.reset()
    org_id = sim.control.organisation_create("Springfield Schools", org_type="edu")
    uid = sim.control.vpp_location_create(org_id, "Springfield High", country="DE")
    return Location(sim, org_id, uid, [])


def _vpptoken(fields: object) -> bytes:
    return base64.b64encode(json.dumps(fields).encode())


# The file.


def test_a_token_from_abm_decodes_and_keeps_the_whole_file_as_the_credential(
    location: Location,
) -> None:
    content = location.token(validity_days=200)
    token = content_token_decode(content + b"\n")
    assert token.credential == content.decode()
    assert token.org_name == "Springfield Schools"
    now = datetime.now(UTC)
    assert timedelta(days=199) < token.expires_at - now <= timedelta(days=200)
    assert token.days_left(now=now) == 199
    assert token.token not in repr(token) and token.credential not in str(token)
    assert token.fingerprint.startswith("SHA256:")


@pytest.mark.parametrize(
    "exp_date", ["2030-11-08T22:33:22+0000", "2030-11-09T00:33:22+02:00", "2030-11-08T22:33:22Z"]
)
def test_every_offset_form_seen_in_the_wild_is_read(exp_date: str) -> None:
    content = _vpptoken({"token": "abc", "expDate": exp_date, "orgName": "ORG12345"})
    assert content_token_decode(content).expires_at == datetime(2030, 11, 8, 22, 33, 22, tzinfo=UTC)


def test_an_expired_token_is_refused_with_its_date() -> None:
    token = content_token_decode(
        _vpptoken({"token": "abc", "expDate": "2014-08-15T18:13:52-0700", "orgName": "ORG"})
    )
    with pytest.raises(ContentTokenExpiredError, match="expired on 16 Aug 2014 at 01:13 UTC"):
        content_token_check_usable(token, now=datetime.now(UTC))


def _server_token(sim: RunningSim, org_id: str) -> bytes:
    server_uuid = sim.control.server_create(org_id, "Springfield MDM")
    certificate = key_pair_generate(common_name="test").certificate_pem
    sim.control.public_key_upload(server_uuid, certificate)
    return sim.control.token_download(server_uuid)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sToken_for_Springfield.vpptoken", "x")
    return buffer.getvalue()


def test_other_files_are_named(location: Location) -> None:
    key = push_key_generate(organisation="Springfield")
    files = {
        FileKind.SERVER_TOKEN: _server_token(location.sim, location.org_id),
        FileKind.PRIVATE_KEY: key.private_key_pem,
        FileKind.CERTIFICATE_REQUEST: key.csr_pem,
        FileKind.CERTIFICATE: key_pair_generate(common_name="x").certificate_pem,
        FileKind.ARCHIVE: _zip(),
        FileKind.DOCUMENT: b"%PDF-1.7\n...",
        FileKind.UNKNOWN: os.urandom(300),
        FileKind.EMPTY: b" \n",
    }
    for kind, data in files.items():
        with pytest.raises(WrongFileKindError) as refused:
            content_token_decode(data)
        assert refused.value.kind is kind, kind
        assert "not an Apps and Books content token" in refused.value.message
    assert "DEP server token (.p7m)" in WrongFileKindError(kind=FileKind.SERVER_TOKEN).message


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"token": "abc", "orgName": "ORG"}, "is missing expDate"),
        ({"token": "", "expDate": "2030-11-08T22:33:22+0000", "orgName": "O"}, "is missing token"),
        ({"token": "abc", "expDate": "next year", "orgName": "ORG"}, "has expDate 'next year'"),
        ({"token": "abc", "expDate": "2030-11-08T22:33:22", "orgName": "ORG"}, "has expDate"),
        ({"token": "abc", "expDate": 1, "orgName": "ORG"}, "is missing expDate"),
    ],
)
def test_a_damaged_token_says_what_is_wrong(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ContentTokenDamagedError, match=problem) as refused:
        content_token_decode(_vpptoken(fields))
    assert "download the content token of the location" in refused.value.message


def test_size_and_nesting_are_bounded() -> None:
    with pytest.raises(ContentTokenTooLargeError):
        content_token_decode(b"A" * (CONTENT_TOKEN_MAX_BYTES + 1))
    nested = base64.b64encode(b'{"token": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(ContentTokenDamagedError, match="nested too deeply"):
        content_token_decode(nested)
    quoted_brackets = {"token": "[[[{{{", "expDate": "2030-11-08T22:33:22+0000", "orgName": "O"}
    assert content_token_decode(_vpptoken(quoted_brackets)).token == "[[[{{{"


# Apple's service, played by applesim.


def test_client_config_names_the_location_and_claiming_sets_our_mdm_info(
    location: Location,
) -> None:
    client = location.client(location.token())
    config = client.client_config()
    assert (config.location_name, config.country, config.uid) == (
        "Springfield High",
        "DE",
        location.uid,
    )
    assert config.website_url == "https://school.apple.com"
    assert config.mdm_info is None and not config.managed_by_another_mdm(our_mdm_id=OURS.id)
    claimed = client.client_config_claim(mdm_info=OURS)
    assert claimed.mdm_info == OURS
    assert location.sim.control.vpp_location(location.uid)["mdm_info"]["name"] == "mdmportal"
    assert client.client_config().mdm_info == OURS


def test_another_mdms_claim_is_seen_and_can_be_taken_over(location: Location) -> None:
    other = {"id": "522d5c43-44ca", "name": "Apple Configurator 2", "metadata": "2.13.3"}
    location.sim.control.vpp_mdm_info_set(location.uid, other)
    client = location.client(location.token())
    config = client.client_config()
    assert config.managed_by_another_mdm(our_mdm_id=OURS.id)
    assert config.mdm_info is not None and config.mdm_info.name == "Apple Configurator 2"
    assert not client.client_config_claim(mdm_info=OURS).managed_by_another_mdm(our_mdm_id=OURS.id)


def test_a_new_download_leaves_the_previous_token_valid(location: Location) -> None:
    first = location.token()
    second = location.token()
    assert first != second
    for content in (first, second):
        assert location.client(content).client_config().location_name == "Springfield High"


def test_assets_are_counted_across_pages(location: Location) -> None:
    location.sim.control.vpp_assets_add(location.uid, 150, licences=20)
    count = location.client(location.token()).assets_count()
    assert (count.assets, count.licences_total) == (150, 3000)
    assert count.licences_assigned + count.licences_available == 3000


def test_an_empty_location_has_no_assets(location: Location) -> None:
    assert location.client(location.token()).assets_count().assets == 0


def test_revoked_expired_and_unknown_tokens_get_their_own_errors(location: Location) -> None:
    revoked = location.token()
    location.sim.control.vpp_token_revoke(revoked)
    with pytest.raises(AppsBooksTokenRevokedError) as refused:
        location.client(revoked).client_config()
    assert (refused.value.status, refused.value.error_number) == (401, 9625)

    unknown = _vpptoken({"token": "abc", "expDate": "2030-11-08T22:33:22+0000", "orgName": "O"})
    with pytest.raises(AppsBooksTokenInvalidError) as refused_invalid:
        location.client(unknown).client_config()
    # Apple answers 200 with an error body; the number decides (Fleet's client notes the same).
    assert (refused_invalid.value.status, refused_invalid.value.error_number) == (200, 9622)

    expiring = location.token(validity_days=1)
    location.sim.control.clock_advance(2 * 24 * 3600)
    with pytest.raises(AppsBooksTokenExpiredError, match="9621"):
        location.client(expiring).client_config()


def test_a_rate_limit_is_retried_after_the_wait_apple_asks_for(location: Location) -> None:
    client = location.client(location.token())
    location.sim.control.vpp_rate_limit(count=2, retry_after="3")
    assert client.client_config().location_name == "Springfield High"
    assert location.waits == [3.0, 3.0]


def test_a_rate_limit_that_outlasts_the_retries_is_raised_with_apples_wait(
    location: Location,
) -> None:
    client = location.client(location.token(), max_retries=2)
    location.sim.control.vpp_rate_limit(endpoint="vpp_assets", count=3, retry_after="4")
    with pytest.raises(AppsBooksRateLimitedError) as refused:
        client.assets_count()
    assert refused.value.retry_after == 4.0 and refused.value.error_number == 9646
    assert location.waits == [4.0, 4.0]
    assert location.sim.control.state()["faults_pending"] == {}


def test_a_wait_longer_than_the_client_accepts_is_not_slept(location: Location) -> None:
    client = location.client(location.token(), max_retry_wait=60)
    location.sim.control.vpp_rate_limit(count=1, retry_after="3600")
    with pytest.raises(AppsBooksRateLimitedError, match="3600 seconds"):
        client.client_config()
    assert location.waits == []


def test_apple_unreachable_or_failing_changes_nothing(location: Location) -> None:
    content = location.token()
    location.sim.control.faults_set("vpp_client_config_update", [{"count": 4, "status": 503}])
    with pytest.raises(AppsBooksUnavailableError, match="HTTP 503"):
        location.client(content).client_config_claim(mdm_info=OURS)
    assert location.sim.control.vpp_location(location.uid)["mdm_info"] is None
    location.sim.control.faults_set("vpp_client_config", [{"action": "malformed"}])
    with pytest.raises(AppsBooksUnavailableError, match="not a JSON object"):
        location.client(content).client_config()
    closed = AppsBooksClient(
        content_token=content_token_decode(content), base_url="http://127.0.0.1:9/mdm/v2"
    )
    with pytest.raises(AppsBooksUnavailableError, match="could not be reached"):
        closed.client_config()
