"""Bad push-certificate files through every entry point (Edit APNs Certificate, the API, the
command line): each gets the same clear message, is audited once, and changes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from dep_accounts.apple.apns import push_certificate_request_build, push_key_generate
from dep_accounts.apple.keypair import key_pair_generate
from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, PushCertificate, PushCertificateUpload
from dep_accounts.services.push.intake import push_request_make, vendor_certificate
from tests.token_corpus import p7m_encrypted

pytestmark = pytest.mark.django_db


def _our_expired(push: PushCertificate) -> bytes:
    """A certificate for our key and the current topic that expired yesterday."""
    key = serialization.load_pem_private_key(secret_decrypt(push.private_key_encrypted), None)
    name = x509.Name([x509.NameAttribute(NameOID.USER_ID, push.topic)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=366))
        .not_valid_after(now - timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _another_keys(portal) -> bytes:
    stranger = push_key_generate(organisation="Shelbyville")
    return portal.create(
        push_certificate_request_build(csr_pem=stranger.csr_pem, vendor=vendor_certificate())
    )


def _dep_token(portal) -> bytes:
    return p7m_encrypted(
        b"token", certificate_pem=key_pair_generate(common_name="x").certificate_pem
    )


def _vpp_token(portal) -> bytes:
    fields = {"token": "dGVzdA==", "expDate": "2027-01-17T11:02:21+0000", "orgName": "Springfield"}
    return base64.b64encode(json.dumps(fields).encode())


def _vendor_pem(portal) -> bytes:
    with open(portal.vendor_path, "rb") as vendor:
        bundle = vendor.read()
    return bundle[bundle.index(b"-----BEGIN CERTIFICATE-----") :]


Build = Callable[[object], bytes]
# name: (the file, the refusal's code, words of its message)
CORPUS: dict[str, tuple[Build, str, str]] = {
    "a DEP server token": (_dep_token, "bad_file", "a DEP server token (.p7m)"),
    "an Apps and Books content token": (_vpp_token, "bad_file", "content token (.vpptoken)"),
    "a private key": (
        lambda portal: push_key_generate(organisation="x").private_key_pem,
        "bad_file",
        "Never upload private keys",
    ),
    "noise": (lambda portal: bytes(range(256)) * 4, "bad_file", "not a file Apple issues"),
    "an empty file": (lambda portal: b"", "bad_file", "download did not finish"),
    "the MDM vendor certificate": (_vendor_pem, "bad_file", "no com.apple.mgmt. topic"),
    "the signed request": (
        lambda portal: push_request_make(actor=None),
        "bad_file",
        "signed push-certificate request",
    ),
    "another key's certificate": (_another_keys, "wrong_key", "issued for another key"),
    "an expired certificate": (
        lambda portal: _our_expired(PushCertificate.objects.get()),
        "bad_file",
        "expired on",
    ),
    "a file too large": (lambda portal: b"-" * 70_000, "too_large", "a few KB"),
}


@pytest.fixture
def installed(push_portal, admin, settings):
    push_portal.vendor_path = settings.APNS_VENDOR_CERTIFICATE
    push_portal.first_certificate(admin)
    return push_portal


def _snapshot() -> tuple:
    push = PushCertificate.objects.get()
    fields = ("topic", "serial_number", "expires_at", "apple_id", "state", "private_key_encrypted")
    uploads = list(PushCertificateUpload.objects.values_list("pk", "is_current"))
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in
                 (getattr(push, f) for f in fields)), uploads  # fmt: skip


def _refusals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_REJECTED))


@pytest.mark.parametrize("case", CORPUS, ids=list(CORPUS))
def test_every_entry_point_refuses_a_bad_file_alike_and_changes_nothing(
    case,
    installed,
    admin,
    client_as,
    api,
    keys,
    tmp_path,
):
    build, code, words = CORPUS[case]
    content = build(installed)
    before = _snapshot()
    console = client_as(admin).post(
        reverse("dep_accounts:push_edit"),
        {"certificate_file": SimpleUploadedFile("upload.pem", content)},
    )
    assert console.status_code == 200
    assert words in console.content.decode().replace("&#x27;", "'")
    response = api.post(
        reverse("api:push_certificate_upload"),
        key=keys["admin"],
        data=content,
        content_type="application/x-pem-file",
        # Django's test client drops the content type of an empty body; curl sends it.
        CONTENT_TYPE="application/x-pem-file",
    )
    assert response.status_code == (413 if code == "too_large" else 422)
    assert response.json()["code"] == code and words in response.json()["error"]
    path = tmp_path / "upload.pem"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=f"\\[{code}\\]"):
        call_command("push_certificate", "upload", str(path), stdout=StringIO())
    assert _snapshot() == before
    refusals = _refusals()
    assert len(refusals) == 3
    assert {event.details["reason"] for event in refusals} == {code}


def test_inspect_prints_the_topic_and_names_a_wrong_file(installed, tmp_path):
    current = tmp_path / "current.pem"
    current.write_text(PushCertificateUpload.objects.get().certificate_pem)
    output = StringIO()
    call_command("push_certificate", "inspect", str(current), stdout=output)
    facts = json.loads(output.getvalue())
    assert facts["topic"] == PushCertificate.objects.get().topic and not facts["expired"]
    private_key = tmp_path / "key.pem"
    private_key.write_bytes(push_key_generate(organisation="x").private_key_pem)
    with pytest.raises(CommandError, match="Never upload private keys"):
        call_command("push_certificate", "inspect", str(private_key))


def test_the_command_requests_uploads_and_shows(push_portal, admin, tmp_path):
    out = tmp_path / "PushCertificateRequest.plist"
    call_command("push_certificate", "request", "--out", str(out), stdout=StringIO())
    pem = tmp_path / "MDM_Certificate.pem"
    pem.write_bytes(push_portal.create(out.read_bytes()))
    with pytest.raises(CommandError, match=r"\[apple_id_required\]"):
        call_command("push_certificate", "upload", str(pem))
    call_command(
        "push_certificate", "upload", str(pem), "--apple-id", push_portal.apple_id,
        "--user", admin.username, stdout=StringIO(),
    )  # fmt: skip
    output = StringIO()
    call_command("push_certificate", "show", "--json", stdout=output)
    shown = json.loads(output.getvalue())
    assert shown["apple_id"] == push_portal.apple_id and shown["history"][0]["uploaded_by"]
