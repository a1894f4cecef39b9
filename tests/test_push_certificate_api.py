"""The push certificate through the JSON API: every response checked against the OpenAPI
document (the `api` fixture of tests/test_api.py), the same rules as the console."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dep_accounts.models import AuditEvent, PushCertificate

pytestmark = pytest.mark.django_db
PEM = "application/x-pem-file"


def test_a_script_requests_uploads_and_renews_the_push_certificate(api, keys, push_portal):
    assert api.get(reverse("api:push_certificate"), key=keys["admin"]).status_code == 404
    signed = api.post(reverse("api:push_certificate_request"), key=keys["admin"])
    assert signed.status_code == 200
    first = push_portal.create(signed.content)
    url = reverse("api:push_certificate_upload")
    without_apple_id = api.post(url, key=keys["admin"], data=first, content_type=PEM)
    assert without_apple_id.status_code == 422
    assert without_apple_id.json()["code"] == "apple_id_required"
    taken = api.post(
        f"{url}?apple_id={push_portal.apple_id}", key=keys["admin"], data=first, content_type=PEM
    )
    assert taken.status_code == 200
    body = taken.json()
    assert body["topic"].startswith("com.apple.mgmt.External.")
    assert body["apple_id"] == push_portal.apple_id and body["state"] == "ok"
    viewer_view = api.get(reverse("api:push_certificate"), key=keys["viewer"]).json()
    assert viewer_view["topic"] == body["topic"] and len(viewer_view["history"]) == 1

    created = push_portal.create(signed.content)
    refused = api.post(url, key=keys["admin"], data=created, content_type=PEM)
    assert refused.status_code == 422
    assert refused.json()["code"] == "topic_changed"
    assert refused.json()["current_topic"] == body["topic"]
    assert refused.json()["sign_in_apple_id"] == push_portal.apple_id
    assert PushCertificate.objects.get().topic == body["topic"]
    replaced = api.post(
        f"{url}?replace_topic=REPLACE", key=keys["admin"], data=created, content_type=PEM
    )
    assert replaced.status_code == 200 and replaced.json()["topic"] != body["topic"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_TOPIC_REPLACED).exists()


def test_viewers_and_strangers_cannot_change_the_push_certificate(api, keys, push_portal):
    for who, status in [("viewer", 403), ("no role", 403), ("bad", 401)]:
        assert (
            api.post(reverse("api:push_certificate_request"), key=keys[who]).status_code == status
        )
        response = api.post(
            reverse("api:push_certificate_upload"), key=keys[who], data=b"x", content_type=PEM
        )
        assert response.status_code == status
    assert not PushCertificate.objects.exists()


def test_a_request_without_a_vendor_certificate_is_a_conflict(api, keys, settings):
    settings.APNS_VENDOR_CERTIFICATE = "/nonexistent/vendor.pem"
    response = api.post(reverse("api:push_certificate_request"), key=keys["admin"])
    assert response.status_code == 409 and "cannot be read" in response.json()["error"]


def test_a_too_large_or_wrong_type_body_is_refused_unread(api, keys, push_portal):
    url = reverse("api:push_certificate_upload")
    large = api.post(url, key=keys["admin"], data=b"x" * 70_000, content_type=PEM)
    assert large.status_code == 413 and large.json()["limit_bytes"] == 64 * 1024
    wrong = api.post(url, key=keys["admin"], data=b"{}", content_type="application/json")
    assert wrong.status_code == 415
