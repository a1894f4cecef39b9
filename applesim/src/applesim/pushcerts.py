"""The Apple Push Certificates Portal (identity.apple.com/pushcert), simulated: its state and rules.

An MDM vendor's customer signs in with an Apple ID and uploads a signed push-certificate request:
base64 of a plist holding `PushCertRequestCSR` (base64 DER CSR), `PushCertCertificateChain`
(PEM: the MDM vendor certificate, then Apple's intermediate and root) and `PushCertSignature`
(base64 RSA PKCS#1 v1.5 SHA-256 signature of the DER CSR by the vendor key), as Apple's "Setting
Up Push Notifications for Your MDM Customers" describes. The portal checks that the vendor
certificate is one this simulator's "Apple WWDR" issued, that the signature verifies with it and
that the CSR is self-consistent, then issues a 365-day certificate for the CSR's key, with the
subject `UID=com.apple.mgmt.External.<uuid>, CN=APSP:<uuid>, C=<country>`, from a simulated
"Apple Application Integration 2 Certification Authority".

**Create** mints a new topic; **Renew** of one of the Apple ID's certificates keeps its topic and
gives a new serial and expiry. The simulated Apple CAs live in the state (a reset makes new ones,
so vendor certificates issued before a reset stop verifying).
"""

from __future__ import annotations

import base64
import binascii
import json
import plistlib
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from applesim.database import SimError, timestamp
from applesim.store import SimStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS push_certificate (
    id INTEGER PRIMARY KEY, apple_id TEXT NOT NULL, topic TEXT NOT NULL UNIQUE,
    vendor_name TEXT NOT NULL, serial TEXT NOT NULL, not_after TEXT NOT NULL,
    pem BLOB NOT NULL, created_at TEXT NOT NULL, renewed_at TEXT
);
"""
CA_NAMES = {
    "root": "Apple Root CA",
    "wwdr": "Apple Worldwide Developer Relations Certification Authority",
    "integration": "Apple Application Integration 2 Certification Authority",
}
PUSH_VALIDITY = timedelta(days=365)
VENDOR_PREFIX = "MDM Vendor: "


def _name(common_name: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if "unit" in extra:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, extra["unit"]))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, extra.get("org", "Apple Inc.")))
    attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, extra.get("country", "US")))
    return x509.Name(attributes)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class _Authority:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


class RequestRejected(SimError):
    """The uploaded push-certificate request is not one the portal accepts."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "REQUEST_INVALID", message)


class PushCertificates:
    """Apple's push-certificate authorities, the vendors they certify, and the customers' certs."""

    def __init__(self, store: SimStore) -> None:
        self.store = store
        with store.lock:
            store.connection.executescript(SCHEMA)

    # Apple's authorities, made once per state.

    def _authorities(self) -> dict[str, _Authority]:
        with self.store.transaction():
            saved = self.store.setting("pushcert_authorities")
            if saved is None:
                saved = json.dumps(self._authorities_new())
                self.store.setting_set("pushcert_authorities", saved)
        return {
            role: _Authority(
                x509.load_pem_x509_certificate(pair["certificate"].encode()),
                serialization.load_pem_private_key(pair["key"].encode(), password=None),  # type: ignore[arg-type]
            )
            for role, pair in json.loads(saved).items()
        }

    def _authorities_new(self) -> dict[str, dict[str, str]]:
        now = self.store.now()
        root_key = _rsa_key()
        root_name = _name(CA_NAMES["root"], unit="Apple Certification Authority")
        root = self._certificate(
            root_name, root_key.public_key(), root_name, root_key, now, 3650, ca=True
        )
        made = {"root": (root, root_key)}
        for role in ("wwdr", "integration"):
            key = _rsa_key()
            name = _name(CA_NAMES[role], unit="Apple Certification Authority")
            made[role] = (
                self._certificate(name, key.public_key(), root_name, root_key, now, 3650, ca=True),
                key,
            )
        return {
            role: {
                "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
                "key": _key_pem(key).decode(),
            }
            for role, (certificate, key) in made.items()
        }

    def _certificate(
        self,
        subject: x509.Name,
        public_key: Any,
        issuer: x509.Name,
        issuer_key: rsa.RSAPrivateKey,
        not_before: datetime,
        days: int,
        *,
        ca: bool = False,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before - timedelta(minutes=5))
            .not_valid_after(not_before + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    # The MDM vendor certificate, as Apple's developer portal gives it.

    def vendor_issue(self, *, vendor_name: str, team_id: str = "ABCDE12345") -> bytes:
        """A PEM bundle: the vendor's private key, its MDM vendor certificate, Apple's chain."""
        vendor_name = vendor_name.strip()
        if not vendor_name or len(vendor_name) > 64:
            raise SimError(400, "VENDOR_NAME_INVALID", "A vendor needs a name (64 at most).")
        authorities = self._authorities()
        key = _rsa_key()
        subject = _name(VENDOR_PREFIX + vendor_name, unit=team_id, org=vendor_name)
        wwdr = authorities["wwdr"]
        certificate = self._certificate(
            subject, key.public_key(), wwdr.certificate.subject, wwdr.key, self.store.now(), 365
        )
        return _key_pem(key) + b"".join(
            item.public_bytes(serialization.Encoding.PEM)
            for item in (certificate, wwdr.certificate, authorities["root"].certificate)
        )

    # The customer's push certificates.

    def request_verify(self, request: bytes) -> tuple[x509.CertificateSigningRequest, str]:
        """The CSR in a signed push-certificate request and the vendor's name, once verified."""
        try:
            fields = plistlib.loads(base64.b64decode(b"".join(request.split()), validate=True))
        except (binascii.Error, ValueError, plistlib.InvalidFileException):
            raise RequestRejected(
                "This is not a push certificate request: upload the file your MDM vendor's "
                "product made (base64 of a property list)."
            ) from None
        if not isinstance(fields, dict) or not all(
            isinstance(fields.get(key), str)
            for key in ("PushCertRequestCSR", "PushCertCertificateChain", "PushCertSignature")
        ):
            raise RequestRejected(
                "The request lacks PushCertRequestCSR, PushCertCertificateChain or "
                "PushCertSignature."
            )
        try:
            csr_der = base64.b64decode(fields["PushCertRequestCSR"])
            csr = x509.load_der_x509_csr(csr_der)
            signature = base64.b64decode(fields["PushCertSignature"])
            chain = x509.load_pem_x509_certificates(fields["PushCertCertificateChain"].encode())
        except (binascii.Error, ValueError):
            raise RequestRejected("The request's CSR, chain or signature cannot be read.") from None
        if not csr.is_signature_valid or not isinstance(csr.public_key(), rsa.RSAPublicKey):
            raise RequestRejected("The request's CSR is not a valid RSA certificate request.")
        vendor = chain[0]
        wwdr = self._authorities()["wwdr"].certificate
        now = self.store.now()
        try:
            vendor.verify_directly_issued_by(wwdr)
        except (ValueError, TypeError, InvalidSignature):
            raise RequestRejected(
                "The request is not signed with an MDM vendor certificate Apple issued."
            ) from None
        if not vendor.not_valid_before_utc <= now <= vendor.not_valid_after_utc:
            raise RequestRejected("The MDM vendor certificate that signed the request expired.")
        public_key = vendor.public_key()
        try:
            assert isinstance(public_key, rsa.RSAPublicKey)
            public_key.verify(signature, csr_der, padding.PKCS1v15(), hashes.SHA256())
        except (AssertionError, InvalidSignature):
            raise RequestRejected(
                "The request's signature does not verify with its MDM vendor certificate "
                "(Apple expects SHA256withRSA over the DER CSR)."
            ) from None
        common_names = vendor.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        vendor_name = str(common_names[0].value).removeprefix(VENDOR_PREFIX) if common_names else ""
        return csr, vendor_name

    def _push_certificate(
        self, csr: x509.CertificateSigningRequest, topic: str, days: int = PUSH_VALIDITY.days
    ) -> bytes:
        integration = self._authorities()["integration"]
        countries = csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.USER_ID, topic),
                x509.NameAttribute(NameOID.COMMON_NAME, "APSP:" + topic.rsplit(".", 1)[-1]),
                x509.NameAttribute(
                    NameOID.COUNTRY_NAME, str(countries[0].value) if countries else "US"
                ),
            ]
        )
        certificate = self._certificate(
            subject,
            csr.public_key(),
            integration.certificate.subject,
            integration.key,
            self.store.now(),
            days,
        )
        return certificate.public_bytes(serialization.Encoding.PEM)

    def create(
        self, *, apple_id: str, request: bytes, validity_days: int = PUSH_VALIDITY.days
    ) -> sqlite3.Row:
        """Create a Certificate: a new topic for this Apple ID (a shorter life for demos)."""
        apple_id = _apple_id_checked(apple_id)
        if not 1 <= validity_days <= PUSH_VALIDITY.days:
            raise SimError(400, "VALIDITY_INVALID", "validity_days is between 1 and 365.")
        csr, vendor_name = self.request_verify(request)
        topic = f"com.apple.mgmt.External.{uuid.uuid4()}"
        pem = self._push_certificate(csr, topic, validity_days)
        certificate = x509.load_pem_x509_certificate(pem)
        with self.store.transaction() as connection:
            connection.execute(
                "INSERT INTO push_certificate (apple_id, topic, vendor_name, serial, not_after,"
                " pem, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    apple_id,
                    topic,
                    vendor_name,
                    f"{certificate.serial_number:X}",
                    timestamp(certificate.not_valid_after_utc),
                    pem,
                    timestamp(self.store.now()),
                ),
            )
        return self.certificate(apple_id=apple_id, topic=topic)

    def renew(self, *, apple_id: str, topic: str, request: bytes) -> sqlite3.Row:
        """Renew one of this Apple ID's certificates: same topic, new serial and expiry."""
        existing = self.certificate(apple_id=apple_id, topic=topic)
        csr, vendor_name = self.request_verify(request)
        pem = self._push_certificate(csr, existing["topic"])
        certificate = x509.load_pem_x509_certificate(pem)
        with self.store.transaction() as connection:
            connection.execute(
                "UPDATE push_certificate SET vendor_name = ?, serial = ?, not_after = ?, pem = ?,"
                " renewed_at = ? WHERE id = ?",
                (
                    vendor_name,
                    f"{certificate.serial_number:X}",
                    timestamp(certificate.not_valid_after_utc),
                    pem,
                    timestamp(self.store.now()),
                    existing["id"],
                ),
            )
        return self.certificate(apple_id=apple_id, topic=topic)

    def certificate(self, *, apple_id: str, topic: str) -> sqlite3.Row:
        """One of this Apple ID's certificates; another Apple ID's are not found, as at Apple."""
        row = self.store.query_one(
            "SELECT * FROM push_certificate WHERE apple_id = ? AND topic = ?",
            (apple_id.strip().lower(), topic),
        )
        if row is None:
            raise SimError(404, "CERTIFICATE_NOT_FOUND", f"{apple_id} has no certificate {topic}.")
        return row

    def certificates(self, apple_id: str) -> list[sqlite3.Row]:
        return self.store.query(
            "SELECT * FROM push_certificate WHERE apple_id = ? ORDER BY id",
            (apple_id.strip().lower(),),
        )

    def sign_in(self, apple_id: str) -> None:
        self.store.setting_set("pushcert_apple_id", _apple_id_checked(apple_id))

    def signed_in(self) -> str | None:
        return self.store.setting("pushcert_apple_id") or None


def certificate_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "apple_id": row["apple_id"],
        "topic": row["topic"],
        "vendor_name": row["vendor_name"],
        "serial": row["serial"],
        "not_after": row["not_after"],
        "created_at": row["created_at"],
        "renewed_at": row["renewed_at"],
    }


def certificate_filename(row: sqlite3.Row) -> str:
    """Apple's name for the download: MDM_<Vendor>_Certificate.pem."""
    return "MDM_" + re.sub(r"[^A-Za-z0-9 ._&-]+", "_", row["vendor_name"]) + "_Certificate.pem"


def _apple_id_checked(apple_id: str) -> str:
    apple_id = apple_id.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", apple_id):
        raise SimError(400, "APPLE_ID_INVALID", f"{apple_id!r} is not an Apple ID.")
    return apple_id
