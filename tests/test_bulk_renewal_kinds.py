"""Bulk renewal of every kind in one upload: DEP server tokens (.p7m), Apps and Books content
tokens (.vpptoken) and the APNs push certificate (.pem), each told apart by its bytes, matched to
what it renews, checked through its own intake against applesim over a socket, and stored only
when the preview is confirmed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dep_accounts.apple import keypair as apple_keypair
from dep_accounts.apple.file_kinds import FileKind
from dep_accounts.models import AuditEvent, ContentToken, DEPAccount, PushCertificate
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.push.intake import push_request_make
from dep_accounts.services.renewal.batch import NO_ACCOUNT_KEY
from tests.conftest import AppsBooks

pytestmark = pytest.mark.django_db

BULK_URL = "/admin/apple-dep/dep-accounts/bulk-renew/"
CONFIRM_URL = "/admin/apple-dep/dep-accounts/bulk-renew/confirm/"
OTHER_MDM = {"id": "522d5c43-44ca", "name": "Other MDM", "metadata": "other.example"}


@pytest.fixture
def everything(abm, dep_account, push_portal, admin, settings):
    """A DEP account, a content token for Springfield High and a push certificate, all current.

    applesim is reset once, by `abm`: the Apps and Books location is made after it, in the
    same organisation, as ABM has both under one sign-in."""
    sim = push_portal.sim
    settings.VPP_API_URL = sim.url + "/mdm/v2"
    settings.VPP_MDM_ID = "mdmportal-test-instance"
    org_id = abm.org_id
    apps_books = AppsBooks(
        sim=sim, org_id=org_id, uid=sim.control.vpp_location_create(org_id, "Springfield High")
    )
    content_token = content_token_intake(
        content_token=None,
        upload=TokenFile("first.vpptoken", apps_books.token(validity_days=300)),
        actor=admin,
        apple_id="vpp.manager@springfield.example",
    )
    push = push_portal.first_certificate(admin)
    return SimpleNamespace(
        account=dep_account,
        apps_books=apps_books,
        content_token=content_token,
        push=push,
        push_portal=push_portal,
    )


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def _foreign_server_token(abm) -> bytes:
    key_pair = apple_keypair.key_pair_generate(common_name="another-mdm")
    other = SimpleNamespace(
        key_pair=SimpleNamespace(certificate_pem=key_pair.certificate_pem.decode())
    )
    return abm.token_for(other, server_uuid=abm.server_add("Another MDM"))


def _stored() -> list:
    """What a preview must leave alone: every credential's current file and expiry."""
    return [
        list(DEPAccount.objects.values_list("pk", "token_expires_at")),
        list(ContentToken.objects.values_list("pk", "fingerprint", "expires_at")),
        list(PushCertificate.objects.values_list("pk", "serial_number", "topic", "expires_at")),
    ]


def _rejections() -> dict[str, int]:
    rejected = (
        AuditEvent.Action.TOKEN_REJECTED,
        AuditEvent.Action.CONTENT_TOKEN_REJECTED,
        AuditEvent.Action.PUSH_REJECTED,
    )
    return {action: AuditEvent.objects.filter(action=action).count() for action in rejected}


def test_one_upload_renews_each_kind_and_refuses_what_it_must(abm, client_as, admin, everything):
    apps_books, push_portal = everything.apps_books, everything.push_portal
    stranger = apps_books.sim.control.vpp_location_create(apps_books.org_id, "Shelbyville Elem")
    renewed_pem = push_portal.renew(push_request_make(actor=admin), topic=everything.push.topic)
    created_pem = push_portal.create(push_request_make(actor=admin))
    files = [
        _upload("MDM_Token_smime.p7m", abm.token_for(everything.account)),
        _upload("sToken_for_Springfield_High.vpptoken", apps_books.token()),
        _upload("MDM_Certificate.pem", renewed_pem),
        _upload("Other_Token_smime.p7m", _foreign_server_token(abm)),
        _upload("sToken_for_Shelbyville.vpptoken", apps_books.token(uid=stranger)),
        _upload("MDM_Certificate (1).pem", created_pem),
    ]
    before, rejected_before = _stored(), _rejections()
    client = client_as(admin)

    response = client.post(BULK_URL, {"token_files": files})

    rows = response.context["rows"]
    assert [(row.kind, row.applies) for row in rows] == [
        (FileKind.SERVER_TOKEN, True),
        (FileKind.CONTENT_TOKEN, True),
        (FileKind.PUSH_CERTIFICATE, True),
        (FileKind.SERVER_TOKEN, False),
        (FileKind.CONTENT_TOKEN, False),
        (FileKind.PUSH_CERTIFICATE, False),
    ]
    assert [row.target_name for row in rows[:3]] == [
        everything.account.name,
        "Springfield High",
        "APNs push certificate",
    ]
    assert rows[2].server_name == everything.push.topic
    assert rows[3].problem == NO_ACCOUNT_KEY
    # The single-file pages' wordings, and the topic guard without its typed replacement.
    assert "No content token here is for the location “Shelbyville Elem”" in rows[4].problem
    assert "instead of “Renew”" in rows[5].problem and everything.push.topic in rows[5].problem
    assert "Bulk renewal never replaces the topic" in rows[5].problem
    assert "REPLACE" not in rows[5].problem and rows[5].reason == "topic_changed"
    page = response.content.decode()
    assert "Apps and Books content token" in page and "APNs push certificate" in page
    assert f'<a href="{reverse("dep_accounts:push")}">APNs Certificate page</a>' in page
    assert "Renew 3 credentials" in page
    # Nothing stored; each refusal in the audit log once, under its kind.
    assert _stored() == before
    assert {k: v - rejected_before[k] for k, v in _rejections().items()} == {
        AuditEvent.Action.TOKEN_REJECTED: 1,
        AuditEvent.Action.CONTENT_TOKEN_REJECTED: 1,
        AuditEvent.Action.PUSH_REJECTED: 1,
    }

    response = client.post(CONFIRM_URL, follow=True)

    page = response.content.decode()
    assert "Renewed 3 credentials:" in page
    everything.account.refresh_from_db()
    content_token = ContentToken.objects.get(pk=everything.content_token.pk)
    push = PushCertificate.objects.get()
    current = everything.account.server_tokens.get(is_current=True)
    assert current.file_name == "MDM_Token_smime.p7m"
    assert content_token.expires_at > everything.content_token.expires_at
    assert push.topic == everything.push.topic
    assert push.serial_number != everything.push.serial_number
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_RENEWED).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONTENT_TOKEN_RENEWED).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_RENEWED).count() == 1
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_TOPIC_REPLACED).exists()


def test_take_over_and_apple_id_changes_apply_only_the_rows_confirmed(client_as, admin, everything):
    apps_books, push_portal = everything.apps_books, everything.push_portal
    apps_books.sim.control.vpp_mdm_info_set(apps_books.uid, OTHER_MDM)
    deputy = "deputy@springfield.example"
    # Apple offers Renew only to the Apple ID that made it; the admin says who did.
    pem = push_portal.renew(push_request_make(actor=admin), topic=everything.push.topic)
    vpptoken = apps_books.token()
    upload = {"push_apple_id": deputy}
    client = client_as(admin)

    files = [_upload("a.vpptoken", vpptoken), _upload("b.pem", pem)]
    response = client.post(BULK_URL, upload | {"token_files": files})

    rows = response.context["rows"]
    assert [row.applies for row in rows] == [True, True]
    assert rows[0].other_mdm == "Other MDM"
    assert rows[1].previous_apple_id == push_portal.apple_id and rows[1].apple_id == deputy
    page = response.content.decode()
    assert 'name="confirm_take_over" value="0"' in page
    assert "Take over from the other MDM" in page
    assert 'name="confirm_apple_id" value="1"' in page
    assert "The Apple ID that manages the push certificate has changed" in page

    # Neither confirmed: both are refused at confirm, with their pages' wordings, nothing stored.
    response = client.post(CONFIRM_URL, follow=True)
    page = response.content.decode()
    assert "Renewed" not in page
    assert "did not renew “Springfield High”" in page and "managed by another MDM" in page
    assert "did not renew “APNs push certificate”" in page
    assert ContentToken.objects.get().fingerprint == everything.content_token.fingerprint
    assert PushCertificate.objects.get().serial_number == everything.push.serial_number
    assert apps_books.sim.control.vpp_location(apps_books.uid)["mdm_info"] == OTHER_MDM

    # Both confirmed on a new preview: the location is taken over, the new Apple ID recorded.
    files = [_upload("a.vpptoken", vpptoken), _upload("b.pem", pem)]
    client.post(BULK_URL, upload | {"token_files": files})
    response = client.post(
        CONFIRM_URL, {"confirm_take_over": ["0"], "confirm_apple_id": ["1"]}, follow=True
    )
    assert "Renewed 2 credentials:" in response.content.decode()
    assert ContentToken.objects.get().uploads.latest("uploaded_at").taken_over_from == "Other MDM"
    assert PushCertificate.objects.get().apple_id == deputy
    assert AuditEvent.objects.filter(action=AuditEvent.Action.APPLE_ID_CHANGED).exists()


def test_files_of_no_renewable_kind_are_named_and_nothing_changes(client_as, admin, everything):
    before = _stored()
    public_key = everything.account.key_pair.certificate_pem.encode()
    files = [
        _upload("public-key.pem", public_key),
        _upload("key.pem", apple_keypair.key_pair_generate(common_name="x").private_key_pem),
        _upload("notes.txt", b"hello"),
    ]
    response = client_as(admin).post(BULK_URL, {"token_files": files})
    rows = response.context["rows"]
    assert [row.applies for row in rows] == [False, False, False]
    # Neither a .p7m, .vpptoken nor .pem from Apple: named as the server token's pages name them.
    assert "an X.509 certificate" in rows[0].problem
    assert "a private key, not an Apple server token" in rows[1].problem
    assert [row.kind_name for row in rows[:2]] == ["Not a file bulk renewal takes"] * 2
    assert "not an Apple server token" in rows[2].problem
    assert _stored() == before
    assert client_as(admin).post(CONFIRM_URL, follow=True).status_code == 200
    assert _stored() == before
