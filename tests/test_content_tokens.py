"""Content tokens in the portal: Add and Edit Content Token, renewal, the verdict's rules, the
take-over from another MDM, and Apple's answers, all through applesim over a socket."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, Banner, ContentToken, ContentTokenUpload
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.verdict import Refusal

pytestmark = pytest.mark.django_db

ADD = reverse("dep_accounts:content_token_add")
OTHER_MDM = {"id": "522d5c43-44ca", "name": "Other MDM", "metadata": "other.example"}


def _upload(content: bytes, name: str = "sToken_for_Springfield_High.vpptoken"):
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def _edit_url(content_token: ContentToken) -> str:
    return reverse("dep_accounts:content_token_edit", args=[content_token.pk])


def _snapshot() -> list[tuple]:
    fields = ("pk", "fingerprint", "expires_at", "state", "credential_encrypted", "apple_id")
    return [
        *ContentToken.objects.values_list(*fields),
        ("uploads", ContentTokenUpload.objects.count()),
    ]


def test_adding_a_content_token_asks_apple_claims_the_location_and_counts_licences(
    client_as, admin, apps_books
):
    apps_books.sim.control.vpp_assets_add(apps_books.uid, 3, licences=10)
    content = apps_books.token(validity_days=200)

    response = client_as(admin).post(
        ADD, {"token_file": _upload(content), "apple_id": "vpp@springfield.example"}
    )

    content_token = ContentToken.objects.get()
    assert response.status_code == 302 and response["Location"] == content_token.get_absolute_url()
    assert (content_token.location_name, content_token.country, content_token.location_uid) == (
        "Springfield High",
        "GB",
        apps_books.uid,
    )
    assert (content_token.org_name, content_token.apple_id) == (
        "Springfield Schools",
        "vpp@springfield.example",
    )
    assert (content_token.asset_count, content_token.licences_total) == (3, 30)
    assert content_token.days_left() in (199, 200)
    assert content_token.state == ContentToken.State.OK
    # The whole file is the credential, stored only encrypted.
    assert secret_decrypt(content_token.credential_encrypted) == content.strip()
    assert content.decode() not in str(ContentToken.objects.values().get())
    mdm_info = apps_books.sim.control.vpp_location(apps_books.uid)["mdm_info"]
    assert mdm_info["id"] == "mdmportal-test-instance"
    event = AuditEvent.objects.get(action=AuditEvent.Action.CONTENT_TOKEN_ADDED)
    assert (event.content_token, event.actor) == (content_token, admin)

    page = client_as(admin).get(content_token.get_absolute_url()).content.decode()
    assert "Springfield High" in page and "vpp@springfield.example" in page


def test_renewal_through_edit_replaces_the_token_and_keeps_the_history(
    client_as, admin, apps_books, content_token
):
    renewed = apps_books.token(validity_days=365)

    response = client_as(admin).post(
        _edit_url(content_token),
        {"token_file": _upload(renewed), "apple_id": content_token.apple_id},
    )

    assert response.status_code == 302
    content_token.refresh_from_db()
    assert secret_decrypt(content_token.credential_encrypted) == renewed.strip()
    assert content_token.days_left() >= 364
    assert content_token.uploads.count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONTENT_TOKEN_RENEWED).count() == 1
    messages = client_as(admin).get(response["Location"]).content.decode()
    assert "Content token of “Springfield High” renewed" in messages


def test_a_token_for_another_location_is_refused_with_both_locations_side_by_side(
    client_as, admin, apps_books, content_token
):
    other_uid = apps_books.location_add("Shelbyville Elementary", country="US")
    before = _snapshot()

    response = client_as(admin).post(
        _edit_url(content_token), {"token_file": _upload(apps_books.token(uid=other_uid))}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "not for “Springfield High”" in page
    assert "Shelbyville Elementary" in page and other_uid in page and apps_books.uid in page
    assert "compare-found" in page and "compare-this" in page
    assert _snapshot() == before
    event = AuditEvent.objects.get(action=AuditEvent.Action.CONTENT_TOKEN_REJECTED)
    assert (event.details["reason"], event.content_token) == ("wrong_location", content_token)


def test_adding_a_location_twice_points_to_the_one_already_added(
    client_as, admin, apps_books, content_token
):
    response = client_as(admin).post(ADD, {"token_file": _upload(apps_books.token())})

    page = response.content.decode()
    assert "already added" in page
    assert _edit_url(content_token) in page
    assert ContentToken.objects.count() == 1


def test_an_older_download_and_the_same_file_are_refused(apps_books, admin, content_token):
    older = apps_books.token(validity_days=100)
    with pytest.raises(Refusal, match="before the current one"):
        content_token_intake(
            content_token=content_token, upload=TokenFile("old.vpptoken", older), actor=admin
        )
    current = secret_decrypt(content_token.credential_encrypted)
    with pytest.raises(Refusal, match="already in use"):
        content_token_intake(
            content_token=content_token, upload=TokenFile("same.vpptoken", current), actor=admin
        )


def test_an_expired_file_is_refused_without_asking_apple(client_as, admin, apps_books):
    expired = base64.b64encode(
        json.dumps(
            {"token": "x", "expDate": "2020-01-01T00:00:00+0000", "orgName": "Springfield"}
        ).encode()
    )
    apps_books.sim.control.faults_set("vpp_client_config", [{"count": 1, "status": 500}])

    response = client_as(admin).post(ADD, {"token_file": _upload(expired)})

    assert "expired on 1 Jan 2020" in response.content.decode()
    assert ContentToken.objects.count() == 0
    # The fault is still waiting: Apple was not asked.
    assert apps_books.sim.control.state()["faults_pending"]


def test_a_location_managed_by_another_mdm_needs_the_take_over_confirmed(
    client_as, admin, apps_books
):
    apps_books.sim.control.vpp_mdm_info_set(apps_books.uid, OTHER_MDM)
    browser = client_as(admin)

    refused = browser.post(ADD, {"token_file": _upload(apps_books.token())})

    page = refused.content.decode()
    assert "managed by another MDM (“Other MDM”)" in page
    assert "is kept: tick the box below" in page
    assert ContentToken.objects.count() == 0
    # A refused file takes nothing from the other MDM.
    assert apps_books.sim.control.vpp_location(apps_books.uid)["mdm_info"] == OTHER_MDM

    confirmed = browser.post(ADD, {"take_over": "on"})

    content_token = ContentToken.objects.get()
    assert confirmed.status_code == 302
    assert content_token.uploads.get().taken_over_from == "Other MDM"
    mdm_info = apps_books.sim.control.vpp_location(apps_books.uid)["mdm_info"]
    assert mdm_info["id"] == "mdmportal-test-instance"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONTENT_TOKEN_TAKEN_OVER).exists()


def test_ticking_take_over_without_a_file_waiting_saves_nothing(
    client_as, admin, apps_books, content_token
):
    before = _snapshot()
    response = client_as(admin).post(
        _edit_url(content_token), {"take_over": "on", "apple_id": "new@springfield.example"}
    )
    assert "No content token file is waiting" in response.content.decode()
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        ("revoke", "revoked this content token (error 9625)"),
        ("unknown", "does not accept this content token"),
        ("rate_limit", "asked to wait 600 seconds"),
        ("outage", "failed (HTTP 503)"),
    ],
)
def test_apples_refusals_and_faults_change_nothing_and_say_what_to_do(
    client_as, admin, apps_books, content_token, prepare, expected, settings
):
    # A page waits for Apple at most this long: longer waits are refused at once.
    settings.VPP_RETRY_MAX_WAIT_SECONDS = 1
    renewed = apps_books.token(validity_days=365)
    control = apps_books.sim.control
    if prepare == "revoke":
        control.vpp_token_revoke(renewed)
    elif prepare == "unknown":
        renewed = base64.b64encode(
            json.dumps(
                {"token": "nope", "expDate": "2031-01-01T00:00:00+0000", "orgName": "S"}
            ).encode()
        )
    elif prepare == "rate_limit":
        control.vpp_rate_limit(count=1, retry_after="600")
    else:
        control.faults_set("vpp_client_config", [{"count": 10, "status": 503}])
    before = _snapshot()

    response = client_as(admin).post(_edit_url(content_token), {"token_file": _upload(renewed)})

    assert expected in response.content.decode()
    assert _snapshot() == before


def test_a_short_rate_limit_is_waited_out_and_the_upload_goes_through(
    client_as, admin, apps_books, content_token
):
    apps_books.sim.control.vpp_rate_limit(count=1, retry_after="0")
    response = client_as(admin).post(
        _edit_url(content_token), {"token_file": _upload(apps_books.token(validity_days=365))}
    )
    assert response.status_code == 302
    assert apps_books.sim.control.state()["faults_pending"] == {}


def test_the_list_shows_location_country_expiry_state_apple_id_and_licences(
    client_as, viewer, content_token
):
    page = client_as(viewer).get(reverse("dep_accounts:content_tokens")).content.decode()
    assert "Springfield High" in page and "GB" in page
    assert "vpp.manager<wbr>@springfield.example" in page
    assert "299 days left" in page or "300 days left" in page
    assert "Active" in page
    # Viewers see no edit button.
    assert _edit_url(content_token) not in page


def test_the_banner_names_an_expiring_content_token(content_token):
    ContentToken.objects.filter(pk=content_token.pk).update(
        # Mid-morning, so that 3 days and an hour never cross a midnight: 3 calendar days.
        expires_at=timezone.now().replace(hour=9, minute=0) + timedelta(days=3, hours=1)
    )
    from dep_accounts.tasks import token_expiry_refresh

    token_expiry_refresh()

    items = Banner.objects.get().items
    assert items[0]["text"].startswith("The content token of “Springfield High” expires in 3 days")
    assert items[0]["url"] == _edit_url(content_token) + "#upload-token"


def test_the_audit_log_names_the_content_token_of_each_event(client_as, viewer, content_token):
    page = client_as(viewer).get(reverse("dep_accounts:audit_log")).content.decode()
    assert "Content token added" in page
    assert f'<a href="{content_token.get_absolute_url()}">Springfield High</a>' in page
