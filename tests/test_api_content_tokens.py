"""The API's content tokens and credentials: the same intake and rules as the console, every
response checked against the OpenAPI document (the `api` fixture of test_api)."""

from __future__ import annotations

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dep_accounts.models import AuditEvent, ContentToken

pytestmark = pytest.mark.django_db

LIST = reverse("api:content_tokens")
# Base64 of JSON nested 3000 deep: refused before it is parsed.
NESTED = base64.b64encode(b'{"token": ' + b"[" * 3000 + b"]" * 3000 + b"}")
OTHER_MDM = {"id": "other-mdm", "name": "Other MDM", "metadata": "other.example"}


def _renew_url(content_token: ContentToken) -> str:
    return reverse("api:content_token_token", args=[content_token.pk])


def test_a_script_adds_a_content_token_as_the_body_and_reads_it_back(api, keys, apps_books):
    response = api.post(
        LIST + "?apple_id=vpp%40springfield.example",
        key=keys["admin"],
        data=apps_books.token(validity_days=100),
        content_type="application/octet-stream",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["location_name"], body["country"], body["apple_id"]) == (
        "Springfield High",
        "GB",
        "vpp@springfield.example",
    )
    assert body["days_left"] in (99, 100) and len(body["uploads"]) == 1
    assert response["Location"].endswith(reverse("api:content_token", args=[body["id"]]))
    read = api.get(reverse("api:content_token", args=[body["id"]]), key=keys["viewer"])
    assert read.json()["state"] == "ok"
    listed = api.get(LIST, key=keys["viewer"]).json()
    assert [t["id"] for t in listed["results"]] == [body["id"]]


def test_a_renewal_for_another_location_is_refused_with_both_named(
    api, keys, apps_books, content_token
):
    other = apps_books.location_add("Shelbyville Elementary")
    response = api.post(
        _renew_url(content_token),
        key=keys["admin"],
        data={"token_file": SimpleUploadedFile("x.vpptoken", apps_books.token(uid=other))},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "wrong_location"
    assert body["found"] == {
        "location_name": "Shelbyville Elementary",
        "location_uid": other,
        "country": "US",
    }
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONTENT_TOKEN_REJECTED).count() == 1


def test_another_mdms_location_is_taken_over_only_with_take_over(api, keys, apps_books):
    apps_books.sim.control.vpp_mdm_info_set(apps_books.uid, OTHER_MDM)
    content = apps_books.token()
    refused = api.post(
        LIST, key=keys["admin"], data=content, content_type="application/octet-stream"
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "another_mdm")
    assert refused.json()["other_mdm"] == "Other MDM"
    taken = api.post(
        LIST + "?take_over=true",
        key=keys["admin"],
        data=content,
        content_type="application/octet-stream",
    )
    assert taken.status_code == 201
    assert taken.json()["uploads"][0]["taken_over_from"] == "Other MDM"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"", 422, "bad_file"),
        (b"\n", 422, "bad_file"),
        (b"x" * (16 * 1024 + 1), 413, "too_large"),
        (NESTED, 422, "bad_file"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 422, "bad_file"),
    ],
)
def test_bad_files_are_refused_and_nothing_changes(
    api, keys, apps_books, content_token, content, status, code
):
    before = list(ContentToken.objects.values())
    if content:
        response = api.post(
            _renew_url(content_token),
            key=keys["admin"],
            data=content,
            content_type="application/octet-stream",
        )
    else:
        upload = SimpleUploadedFile("empty.vpptoken", b"")
        response = api.post(
            _renew_url(content_token), key=keys["admin"], data={"token_file": upload}
        )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert list(ContentToken.objects.values()) == before


def test_viewers_read_but_cannot_upload(api, keys, apps_books, content_token):
    response = api.post(
        _renew_url(content_token),
        key=keys["viewer"],
        data=apps_books.token(),
        content_type="application/octet-stream",
    )
    assert response.status_code == 403
    assert api.get(LIST, key=keys["no role"]).status_code == 403


def test_the_credentials_list_names_every_kind(api, keys, dep_account, content_token):
    results = api.get(reverse("api:credentials"), key=keys["viewer"]).json()["results"]
    assert {(r["kind"], r["name"]) for r in results} == {
        ("dep_account", "Springfield MDM"),
        ("content_token", "Springfield High"),
    }
