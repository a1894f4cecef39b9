"""The portal's push certificate end to end: the signed request, Create and Renew at applesim's
Apple Push Certificates Portal, the topic guard, the Apple ID rule, expiry, banner, reminders."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from dep_accounts.apple.apns import push_certificate_parse
from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, OutboundEmail, PushCertificate, PushCertificateUpload
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.push.expiry import apns_banner_items, apns_credential_rows
from dep_accounts.services.push.intake import push_certificate_intake, push_request_make
from dep_accounts.services.push.reminders import apns_reminders_due, apns_reminders_send
from dep_accounts.services.push.verdict import (
    AppleIDRequiredError,
    NoRequestError,
    OlderCertificateError,
    PushConfirmations,
    TopicChangedError,
    WrongKeyError,
)
from dep_accounts.services.verdict import AppleIDChangedError
from dep_accounts.tasks import token_expiry_refresh

pytestmark = pytest.mark.django_db


def _pem(content: bytes, name: str = "MDM_Springfield_Certificate.pem") -> TokenFile:
    return TokenFile(name, content)


def test_the_first_request_makes_one_key_kept_encrypted_and_reuses_it(push_portal, admin):
    first = push_request_make(actor=admin)
    push = PushCertificate.objects.get()
    key = secret_decrypt(push.private_key_encrypted)
    assert b"PRIVATE KEY" in key and b"PRIVATE KEY" not in bytes(push.private_key_encrypted)
    assert b"CERTIFICATE REQUEST" in secret_decrypt(push.csr_encrypted)
    second = push_request_make(actor=admin)
    assert first == second  # the same CSR, and PKCS#1 v1.5 signatures are deterministic
    assert secret_decrypt(PushCertificate.objects.get().private_key_encrypted) == key
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_REQUESTED).count() == 2


def test_the_first_certificate_records_topic_serial_expiry_and_apple_id(push_portal, admin):
    stored = push_portal.first_certificate(admin)
    push = PushCertificate.objects.get()
    assert push.topic.startswith("com.apple.mgmt.External.")
    assert (push.topic, push.serial_number) == (stored.topic, stored.serial_number)
    assert push.apple_id == push_portal.apple_id
    assert push.state == PushCertificate.State.OK
    assert 364 <= push.days_left() <= 365
    event = AuditEvent.objects.get(action=AuditEvent.Action.PUSH_UPLOADED)
    assert push.topic in event.message and push_portal.apple_id in event.message


def test_the_first_certificate_needs_the_apple_id_it_was_made_with(push_portal, admin):
    pem = push_portal.create(push_request_make(actor=admin))
    with pytest.raises(AppleIDRequiredError):
        push_certificate_intake(upload=_pem(pem), actor=admin)
    assert not PushCertificateUpload.objects.exists()


def test_a_certificate_before_any_request_is_refused(push_portal, admin):
    with pytest.raises(NoRequestError):
        push_certificate_intake(upload=_pem(b"x"), actor=admin, apple_id=push_portal.apple_id)
    assert AuditEvent.objects.get(action=AuditEvent.Action.PUSH_REJECTED).outcome == "failure"


def test_renew_keeps_the_topic_and_is_accepted(push_portal, admin):
    first = push_portal.first_certificate(admin)
    with time_machine.travel(timezone.now() + timedelta(days=300)):
        pem = push_portal.renew(push_request_make(actor=admin), topic=first.topic)
        renewed = push_certificate_intake(upload=_pem(pem), actor=admin)
    push = PushCertificate.objects.get()
    assert push.topic == first.topic and push.serial_number == renewed.serial_number
    assert push.expires_at > first.expires_at
    assert PushCertificateUpload.objects.filter(is_current=True).get() == renewed
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_RENEWED).count() == 1


def test_create_instead_of_renew_is_refused_with_the_apple_id_to_sign_in_with(push_portal, admin):
    first = push_portal.first_certificate(admin)
    pem = push_portal.create(push_request_make(actor=admin))
    with pytest.raises(TopicChangedError) as refused:
        push_certificate_intake(upload=_pem(pem), actor=admin)
    message = refused.value.message
    assert first.topic in message and push_portal.apple_id in message and "Renew" in message
    assert "every enrolled device would stop answering" in message
    assert PushCertificate.objects.get().serial_number == first.serial_number
    rejected = AuditEvent.objects.get(action=AuditEvent.Action.PUSH_REJECTED)
    assert rejected.details["reason"] == "topic_changed"


@pytest.mark.parametrize("typed", ["REPLACE", "the new topic"])
def test_a_typed_confirmation_replaces_the_topic_on_purpose_and_is_audited(
    push_portal, admin, typed
):
    first = push_portal.first_certificate(admin)
    pem = push_portal.create(push_request_make(actor=admin))
    new_topic = push_certificate_parse(pem).topic
    stored = push_certificate_intake(
        upload=_pem(pem),
        actor=admin,
        confirmations=PushConfirmations(
            topic_replacement=new_topic if typed == "the new topic" else typed
        ),
    )
    assert stored.topic_replaced and stored.topic == new_topic != first.topic
    event = AuditEvent.objects.get(action=AuditEvent.Action.PUSH_TOPIC_REPLACED)
    assert first.topic in event.message and new_topic in event.message


def test_a_wrong_typed_confirmation_does_not_replace_the_topic(push_portal, admin):
    push_portal.first_certificate(admin)
    pem = push_portal.create(push_request_make(actor=admin))
    with pytest.raises(TopicChangedError):
        push_certificate_intake(
            upload=_pem(pem),
            actor=admin,
            confirmations=PushConfirmations(topic_replacement="replace"),
        )


def test_another_apple_id_needs_the_confirmation(push_portal, admin):
    first = push_portal.first_certificate(admin)
    other = "deputy@springfield.example"
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        request = push_request_make(actor=admin)
        # Apple offers Renew only to the Apple ID that made it; the admin says who did.
        pem = push_portal.renew(request, topic=first.topic)
        with pytest.raises(AppleIDChangedError):
            push_certificate_intake(upload=_pem(pem), actor=admin, apple_id=other)
        stored = push_certificate_intake(
            upload=_pem(pem),
            actor=admin,
            apple_id=other,
            confirmations=PushConfirmations(apple_id_changed=True),
        )
    assert stored.apple_id == other and stored.apple_id_change_confirmed
    assert PushCertificate.objects.get().apple_id == other
    assert AuditEvent.objects.filter(action=AuditEvent.Action.APPLE_ID_CHANGED).exists()


def test_the_same_certificate_or_an_older_one_is_refused(push_portal, admin):
    first = push_portal.first_certificate(admin)
    current = PushCertificateUpload.objects.get().certificate_pem.encode()
    with pytest.raises(OlderCertificateError, match="already in use"):
        push_certificate_intake(upload=_pem(current), actor=admin)
    with time_machine.travel(timezone.now() + timedelta(days=10)):
        newer = push_portal.renew(push_request_make(actor=admin), topic=first.topic)
        push_certificate_intake(upload=_pem(newer), actor=admin)
    # The first certificate again: same topic, earlier expiry.
    with pytest.raises(OlderCertificateError, match="older download"):
        push_certificate_intake(upload=_pem(first.certificate_pem.encode()), actor=admin)


def test_a_certificate_for_another_key_is_refused(push_portal, admin):
    from dep_accounts.apple.apns import push_certificate_request_build, push_key_generate
    from dep_accounts.services.push.intake import vendor_certificate

    push_portal.first_certificate(admin)
    stranger = push_key_generate(organisation="Shelbyville")
    request = push_certificate_request_build(csr_pem=stranger.csr_pem, vendor=vendor_certificate())
    with pytest.raises(WrongKeyError):
        push_certificate_intake(upload=_pem(push_portal.create(request)), actor=admin)


def test_the_state_banner_and_credential_row_follow_the_expiry(push_portal, admin):
    first = push_portal.first_certificate(admin)
    assert apns_banner_items(now=timezone.now()) == []
    with time_machine.travel(first.expires_at - timedelta(days=20)):
        token_expiry_refresh()
        push = PushCertificate.objects.get()
        assert push.state == PushCertificate.State.WARNING
        [item] = apns_banner_items(now=timezone.now())
        assert item["level"] == "warning"
        assert "click Renew, not Create" in item["text"] and push_portal.apple_id in item["text"]
        assert item["url"] == reverse("dep_accounts:push_edit") + "#upload-certificate"
        assert item in banner_refresh().items
        [row] = apns_credential_rows()
        assert (row.kind, row.state, row.apple_id) == ("apns", "warning", push_portal.apple_id)
        assert row.days_left == 20
    with time_machine.travel(first.expires_at + timedelta(hours=1)):
        token_expiry_refresh()
        assert PushCertificate.objects.get().state == PushCertificate.State.EXPIRED
        [item] = apns_banner_items(now=timezone.now())
        assert item["level"] == "critical" and "expired" in item["text"]


def test_reminders_go_out_once_per_step_through_the_outbox(push_portal, admin):
    admin.email = "it@springfield.example"
    admin.save()
    first = push_portal.first_certificate(admin)
    with time_machine.travel(first.expires_at - timedelta(days=7)):
        [due] = apns_reminders_due(now=timezone.now())
        assert due.days_before == 7 and "Renew" in due.body and first.topic in due.body
        assert apns_reminders_send() == 1
        assert apns_reminders_send() == 0
        assert apns_reminders_due(now=timezone.now()) == []
    email = OutboundEmail.objects.get()
    assert email.recipient == "it@springfield.example"
    assert "APNs push certificate expires in 7 days" in email.subject


# The pages.


def test_the_page_shows_the_certificate_and_the_edit_flow_renews_it(push_portal, admin, client_as):
    first = push_portal.first_certificate(admin)
    client = client_as(admin)
    page = client.get(reverse("dep_accounts:push")).content.decode()
    assert first.topic in page and push_portal.apple_id in page
    assert reverse("dep_accounts:push_edit") in page
    response = client.post(reverse("dep_accounts:push_request"))
    assert response["Content-Disposition"].endswith('"PushCertificateRequest.plist"')
    pem = push_portal.renew(response.content, topic=first.topic)
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        response = client.post(
            reverse("dep_accounts:push_edit"),
            {"certificate_file": _upload(pem)},
        )
    assert response.status_code == 302
    assert PushCertificate.objects.get().serial_number != first.serial_number


def _upload(content: bytes, name: str = "MDM_Springfield_Certificate.pem"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content)


def test_the_topic_guard_explains_and_keeps_the_file_for_the_typed_confirmation(
    push_portal, admin, client_as
):
    first = push_portal.first_certificate(admin)
    client = client_as(admin)
    pem = push_portal.create(client.post(reverse("dep_accounts:push_request")).content)
    page = client.post(reverse("dep_accounts:push_edit"), {"certificate_file": _upload(pem)})
    text = page.content.decode()
    assert page.status_code == 200
    assert "instead of “Renew”" in text and first.topic in text and push_portal.apple_id in text
    assert "is kept" in text
    assert PushCertificate.objects.get().topic == first.topic
    replaced = client.post(reverse("dep_accounts:push_edit"), {"topic_confirmation": "REPLACE"})
    assert replaced.status_code == 302
    assert PushCertificate.objects.get().topic != first.topic


def test_viewers_see_no_buttons_and_cannot_request(push_portal, admin, viewer, client_as):
    push_portal.first_certificate(admin)
    client = client_as(viewer)
    page = client.get(reverse("dep_accounts:push")).content.decode()
    assert reverse("dep_accounts:push_edit") not in page
    assert reverse("dep_accounts:push_request") not in page
    assert client.post(reverse("dep_accounts:push_request")).status_code == 403
    assert client.get(reverse("dep_accounts:push_edit")).status_code == 403


def test_without_a_vendor_certificate_the_request_says_what_the_operator_must_do(
    admin, client_as, settings
):
    settings.APNS_VENDOR_CERTIFICATE = ""
    response = client_as(admin).post(reverse("dep_accounts:push_request"), follow=True)
    assert "APNS_VENDOR_CERTIFICATE" in response.content.decode()
    assert not PushCertificate.objects.exists()
