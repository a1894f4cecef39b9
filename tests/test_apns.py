"""The MDM push certificate: our key and CSR, the vendor-signed request that applesim's Push
Certificates Portal verifies, and the issued certificate's topic, expiry, serial and key."""

from __future__ import annotations

import base64
import plistlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from applesim.testing import RunningSim, SimControlError, sim_start
from dep_accounts.apple.apns import (
    NotAPushCertificateError,
    PushCertificateBundlesKeyError,
    PushCertificateExpiredError,
    PushCertificateKeyMismatchError,
    PushCertificateTooLargeError,
    VendorCertificate,
    VendorCertificateError,
    push_certificate_check_key,
    push_certificate_check_usable,
    push_certificate_parse,
    push_certificate_request_build,
    push_key_generate,
    vendor_certificate_load,
)
from dep_accounts.apple.file_kinds import FileKind, file_kind_detect

APPLE_ID = "mdm.admin@springfield.example"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = sim_start()
    yield running
    running.stop()


@dataclass
class Portal:
    sim: RunningSim
    vendor: VendorCertificate
    vendor_pem: bytes

    def request(self, csr_pem: bytes) -> bytes:
        return push_certificate_request_build(csr_pem=csr_pem, vendor=self.vendor)


@pytest.fixture
def portal(sim: RunningSim) -> Portal:
    sim.control.reset()
    vendor_pem = sim.control.push_vendor_issue("Springfield MDM Vendor")
    return Portal(sim, vendor_certificate_load(vendor_pem), vendor_pem)


@pytest.fixture(scope="module")
def key():
    return push_key_generate(organisation="Springfield Schools", country="US")


def test_the_csr_is_ours_and_the_key_stays_out_of_repr(key) -> None:
    csr = x509.load_pem_x509_csr(key.csr_pem)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "MDM Push"
    private_key = serialization.load_pem_private_key(key.private_key_pem, password=None)
    assert csr.public_key() == private_key.public_key()
    assert b"PRIVATE" not in repr(key).encode()


def test_the_signed_request_is_apples_plist_signed_with_sha256(portal: Portal, key) -> None:
    request = portal.request(key.csr_pem)
    fields = plistlib.loads(base64.b64decode(request))
    assert base64.b64decode(fields["PushCertRequestCSR"]) == key.csr_der
    chain = x509.load_pem_x509_certificates(fields["PushCertCertificateChain"].encode())
    assert chain[0] == portal.vendor.certificate and len(chain) == 3
    vendor_key = portal.vendor.certificate.public_key()
    assert isinstance(vendor_key, rsa.RSAPublicKey)
    vendor_key.verify(
        base64.b64decode(fields["PushCertSignature"]),
        key.csr_der,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert file_kind_detect(request) is FileKind.PUSH_CERTIFICATE_REQUEST


def test_create_issues_a_certificate_for_our_key_with_a_topic(portal: Portal, key) -> None:
    pem = portal.sim.control.push_certificate_create(APPLE_ID, portal.request(key.csr_pem))
    certificate = push_certificate_parse(pem)
    assert certificate.topic.startswith("com.apple.mgmt.External.")
    assert f"CN=APSP:{certificate.topic.rsplit('.', 1)[-1]}" in certificate.subject
    assert "Apple Application Integration 2 Certification Authority" in certificate.issuer
    now = datetime.now(UTC)
    assert timedelta(days=364) < certificate.expires_at - now <= timedelta(days=365)
    listed = portal.sim.control.push_certificates(APPLE_ID)
    assert [(c["topic"], c["serial"]) for c in listed] == [
        (certificate.topic, certificate.serial_number)
    ]
    push_certificate_check_key(certificate, private_key_pem=key.private_key_pem)
    push_certificate_check_usable(certificate, now=now)


def test_renew_keeps_the_topic_and_create_makes_a_new_one(portal: Portal, key) -> None:
    control = portal.sim.control
    first = push_certificate_parse(
        control.push_certificate_create(APPLE_ID, portal.request(key.csr_pem))
    )
    control.clock_advance(300 * 24 * 3600)
    renewed = push_certificate_parse(
        control.push_certificate_renew(APPLE_ID, first.topic, portal.request(key.csr_pem))
    )
    assert renewed.topic == first.topic
    assert renewed.serial_number != first.serial_number
    assert renewed.expires_at - first.expires_at > timedelta(days=299)
    created = push_certificate_parse(
        control.push_certificate_create(APPLE_ID, portal.request(key.csr_pem))
    )
    assert created.topic != first.topic
    with pytest.raises(SimControlError, match="CERTIFICATE_NOT_FOUND"):
        control.push_certificate_renew(
            "someone.else@example.com", first.topic, portal.request(key.csr_pem)
        )


def test_a_certificate_for_another_key_is_refused(portal: Portal, key) -> None:
    other = push_key_generate(organisation="Shelbyville")
    pem = portal.sim.control.push_certificate_create(APPLE_ID, portal.request(other.csr_pem))
    with pytest.raises(PushCertificateKeyMismatchError, match="issued for another key"):
        push_certificate_check_key(push_certificate_parse(pem), private_key_pem=key.private_key_pem)


def test_the_portal_refuses_requests_it_cannot_verify(portal: Portal, key) -> None:
    control = portal.sim.control
    fields = plistlib.loads(base64.b64decode(portal.request(key.csr_pem)))
    tampered = dict(fields, PushCertSignature=base64.b64encode(b"\0" * 256).decode())
    stranger = _self_made_vendor()
    for request, reason in (
        (base64.b64encode(plistlib.dumps(tampered)), "signature does not verify"),
        (push_certificate_request_build(csr_pem=key.csr_pem, vendor=stranger), "Apple issued"),
        (base64.b64encode(b"hello"), "not a push certificate request"),
    ):
        with pytest.raises(SimControlError, match=reason):
            control.push_certificate_create(APPLE_ID, request)
    assert control.push_certificates(APPLE_ID) == []


def _self_made_vendor() -> VendorCertificate:
    vendor_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MDM Vendor: Self-made")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(vendor_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(vendor_key, hashes.SHA256())
    )
    return VendorCertificate(certificate=certificate, private_key=vendor_key, chain=())


def test_the_vendor_certificate_loads_from_pem_or_pkcs12(portal: Portal) -> None:
    vendor = portal.vendor
    assert vendor.name == "MDM Vendor: Springfield MDM Vendor" and len(vendor.chain) == 2
    p12 = pkcs12.serialize_key_and_certificates(
        b"vendor",
        vendor.private_key,
        vendor.certificate,
        list(vendor.chain),
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    assert vendor_certificate_load(p12, password=b"s3cret").certificate == vendor.certificate
    with pytest.raises(VendorCertificateError, match="PKCS#12"):
        vendor_certificate_load(p12, password=b"wrong")
    certificates_only = portal.vendor_pem.split(b"-----END PRIVATE KEY-----\n", 1)[1]
    with pytest.raises(VendorCertificateError):
        vendor_certificate_load(certificates_only)


def test_other_files_are_named_not_parsed(portal: Portal, key) -> None:
    vendor_certificate = portal.vendor.certificate.public_bytes(serialization.Encoding.PEM)
    files = {
        FileKind.CERTIFICATE: vendor_certificate,
        FileKind.PUSH_CERTIFICATE_REQUEST: portal.request(key.csr_pem),
        FileKind.PRIVATE_KEY: key.private_key_pem,
        FileKind.CERTIFICATE_REQUEST: key.csr_pem,
        FileKind.CONTENT_TOKEN: base64.b64encode(
            b'{"token": "a", "expDate": "2030-11-08T22:33:22+0000", "orgName": "O"}'
        ),
        FileKind.UNKNOWN: b"\x01\x02 hello",
    }
    for kind, data in files.items():
        with pytest.raises(NotAPushCertificateError) as refused:
            push_certificate_parse(data)
        assert refused.value.kind is kind, kind
    assert "no com.apple.mgmt. topic" in NotAPushCertificateError(kind=FileKind.CERTIFICATE).message
    with pytest.raises(PushCertificateTooLargeError):
        push_certificate_parse(b"A" * 70_000)


def test_a_certificate_bundled_with_a_key_is_refused_and_der_is_read(portal: Portal, key) -> None:
    pem = portal.sim.control.push_certificate_create(APPLE_ID, portal.request(key.csr_pem))
    with pytest.raises(PushCertificateBundlesKeyError):
        push_certificate_parse(pem + key.private_key_pem)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert push_certificate_parse(der).topic == push_certificate_parse(pem).topic


def test_an_expired_certificate_is_refused_with_its_date(portal: Portal, key) -> None:
    certificate = push_certificate_parse(
        portal.sim.control.push_certificate_create(APPLE_ID, portal.request(key.csr_pem))
    )
    with pytest.raises(PushCertificateExpiredError, match=r"Renew it .* with the same Apple ID"):
        push_certificate_check_usable(certificate, now=certificate.expires_at)
