"""The MDM push (APNs) certificate: our key and CSR, the vendor-signed request, the issued .pem.

Pure functions, no Django: bytes in, dataclasses out, PushCertificateError subclasses for what
an admin can fix. The flow is Apple's "Setting Up Push Notifications for Your MDM Customers":
the portal makes a key and CSR (the key never leaves it), signs the DER CSR with the MDM vendor
certificate's key (SHA256withRSA), the admin uploads the signed request at the Apple Push
Certificates Portal and uploads the issued certificate back. See docs/apple-vpp-apns.md.
"""

from __future__ import annotations

import base64
import hashlib
import plistlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from dep_accounts.apple.file_kinds import FILE_KIND_NAMES, FileKind, file_kind_detect, push_topic

PUSH_CERTIFICATE_MAX_BYTES = 64 * 1024
VENDOR_FILE_MAX_BYTES = 256 * 1024
PORTAL = "https://identity.apple.com/pushcert"
UPLOAD_AGAIN = (
    f"Sign in to the Apple Push Certificates Portal ({PORTAL}), download the certificate and "
    "upload the .pem file exactly as Apple gives it."
)


class PushCertificateError(Exception):
    """A file or value the portal cannot use; `message` tells the admin what to do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PushCertificateTooLargeError(PushCertificateError):
    def __init__(self, *, size: int) -> None:
        self.size = size
        super().__init__(
            f"This file is {size:,} bytes; an APNs push certificate is a few KB. {UPLOAD_AGAIN}"
        )


class NotAPushCertificateError(PushCertificateError):
    """The file is another kind of file (`kind`), named in the message."""

    def __init__(self, *, kind: FileKind) -> None:
        self.kind = kind
        advice = {
            FileKind.CERTIFICATE: "It has no com.apple.mgmt. topic in its subject, so devices "
            "could not be reached with it. ",
            FileKind.PUSH_CERTIFICATE_REQUEST: "Upload it at the Apple Push Certificates Portal, "
            "and upload here the certificate the portal gives back. ",
            FileKind.PRIVATE_KEY: "Never upload private keys: the portal keeps its own. ",
        }.get(kind, "")
        super().__init__(
            f"This file is {FILE_KIND_NAMES[kind]}, not an APNs push certificate. "
            f"{advice}{UPLOAD_AGAIN}"
        )


class PushCertificateBundlesKeyError(PushCertificateError):
    def __init__(self) -> None:
        super().__init__(
            "This file holds a private key next to the certificate. The portal keeps the push "
            "certificate's key itself and never takes one in an upload. " + UPLOAD_AGAIN
        )


class PushCertificateKeyMismatchError(PushCertificateError):
    def __init__(self) -> None:
        super().__init__(
            "This push certificate was issued for another key, not the one this portal made: "
            "it was requested with another certificate signing request. Download the signed "
            "request from this portal, upload it at the Apple Push Certificates Portal, and "
            "upload the certificate it issues."
        )


class PushCertificateExpiredError(PushCertificateError):
    def __init__(self, *, expired_at: datetime) -> None:
        self.expired_at = expired_at = expired_at.astimezone(UTC)
        super().__init__(
            f"This push certificate expired on {expired_at:%-d %b %Y} at {expired_at:%H:%M} UTC. "
            "Renew it at the Apple Push Certificates Portal with the same Apple ID and upload "
            "the new one."
        )


class VendorCertificateError(PushCertificateError):
    """The configured MDM vendor certificate cannot sign requests (an operator's problem)."""


@dataclass(frozen=True)
class PushKey:
    """Our key for the push certificate and its CSR; the key is a secret kept encrypted."""

    private_key_pem: bytes = field(repr=False)
    csr_pem: bytes

    @property
    def csr_der(self) -> bytes:
        return x509.load_pem_x509_csr(self.csr_pem).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class VendorCertificate:
    """The MDM vendor certificate, its key, and the chain up to Apple's root."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...]

    @property
    def name(self) -> str:
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.certificate.subject.rfc4514_string()


@dataclass(frozen=True)
class PushCertificate:
    """An issued MDM push certificate; `topic` is what devices are enrolled with."""

    topic: str
    serial_number: str
    not_before: datetime
    expires_at: datetime
    subject: str
    issuer: str
    certificate_pem: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate's DER, hex, as Keychain Access shows it."""
        der = x509.load_pem_x509_certificate(self.certificate_pem).public_bytes(
            serialization.Encoding.DER
        )
        return hashlib.sha256(der).hexdigest().upper()

    def days_left(self, *, now: datetime) -> int:
        """Whole days until expiry, rounded down; negative once expired."""
        return (self.expires_at - now).days

    def is_expired(self, *, now: datetime) -> bool:
        return now >= self.expires_at


def push_key_generate(*, organisation: str, country: str = "") -> PushKey:
    """An RSA-2048 key and its CSR (CN "MDM Push", as Zentral; O and C the customer's)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, "MDM Push")]
    if organisation.strip():
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation.strip()[:64]))
    if country:
        if len(country) != 2 or not country.isalpha():
            raise ValueError("country must be an ISO 3166 alpha-2 code")
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(private_key, hashes.SHA256())
    )
    return PushKey(
        private_key_pem=private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        csr_pem=csr.public_bytes(serialization.Encoding.PEM),
    )


def vendor_certificate_load(data: bytes, *, password: bytes | None = None) -> VendorCertificate:
    """The MDM vendor certificate from PEM (key, certificate, chain in any order) or PKCS#12."""
    if len(data) > VENDOR_FILE_MAX_BYTES:
        raise VendorCertificateError("The MDM vendor certificate file is too large.")
    key: PrivateKeyTypes | None
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(_pem_blocks(data, "PRIVATE KEY"), password)
            certificates = x509.load_pem_x509_certificates(data)
        else:
            key, first, extra = pkcs12.load_key_and_certificates(data, password)
            certificates = [c for c in (first, *extra) if c is not None]
    except (ValueError, TypeError) as error:
        raise VendorCertificateError(
            "The MDM vendor certificate must be PEM (its private key and certificate, then "
            f"Apple's intermediate and root) or PKCS#12, with the right password: {error}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise VendorCertificateError("The MDM vendor certificate's private key is not RSA.")
    own = [c for c in certificates if c.public_key() == key.public_key()]
    if not own:
        raise VendorCertificateError("No certificate in the file belongs to its private key.")
    chain = tuple(c for c in certificates if c is not own[0])
    return VendorCertificate(certificate=own[0], private_key=key, chain=chain)


def _pem_blocks(data: bytes, label_end: str) -> bytes:
    """The first PEM block whose label ends with `label_end` (e.g. "PRIVATE KEY")."""
    lines = data.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN ")
         and line.rstrip().endswith(f"{label_end}-----".encode())),
        None,
    )  # fmt: skip
    if start is None:
        raise ValueError("no private key in the file")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(b"-----END "))
    return b"".join(lines[start : end + 1])


def push_certificate_request_build(*, csr_pem: bytes, vendor: VendorCertificate) -> bytes:
    """The signed push-certificate request (base64 of Apple's plist) for the admin to upload."""
    csr_der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    signature = vendor.private_key.sign(csr_der, padding.PKCS1v15(), hashes.SHA256())
    chain = b"".join(
        certificate.public_bytes(serialization.Encoding.PEM)
        for certificate in (vendor.certificate, *vendor.chain)
    )
    plist = plistlib.dumps(
        {
            "PushCertRequestCSR": base64.b64encode(csr_der).decode(),
            "PushCertCertificateChain": chain.decode(),
            "PushCertSignature": base64.b64encode(signature).decode(),
        }
    )
    return base64.b64encode(plist)


def push_certificate_parse(data: bytes) -> PushCertificate:
    """The push certificate in a .pem from Apple's portal (or DER); expiry and key unchecked."""
    if len(data) > PUSH_CERTIFICATE_MAX_BYTES:
        raise PushCertificateTooLargeError(size=len(data))
    kind = file_kind_detect(data)
    if kind is FileKind.PRIVATE_KEY and b"-----BEGIN CERTIFICATE-----" in data:
        raise PushCertificateBundlesKeyError()
    if kind is not FileKind.PUSH_CERTIFICATE:
        raise NotAPushCertificateError(kind=kind)
    if b"-----BEGIN" in data:
        certificates = x509.load_pem_x509_certificates(data)
    else:
        certificates = [x509.load_der_x509_certificate(data.strip())]
    certificate = next(c for c in certificates if push_topic(c))
    return PushCertificate(
        topic=push_topic(certificate) or "",
        serial_number=f"{certificate.serial_number:X}",
        not_before=certificate.not_valid_before_utc,
        expires_at=certificate.not_valid_after_utc,
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
    )


def push_certificate_check_key(certificate: PushCertificate, *, private_key_pem: bytes) -> None:
    """Raise PushCertificateKeyMismatchError unless the certificate is for our key."""
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    public_key = x509.load_pem_x509_certificate(certificate.certificate_pem).public_key()
    if public_key != private_key.public_key():
        raise PushCertificateKeyMismatchError()


def push_certificate_check_usable(certificate: PushCertificate, *, now: datetime) -> None:
    if certificate.is_expired(now=now):
        raise PushCertificateExpiredError(expired_at=certificate.expires_at)
