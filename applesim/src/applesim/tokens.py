"""Apple's side of the server token: the .p7m file Apple Business Manager hands out.

The output is byte-faithful to a real ABM token (docs/apple-dep.md section 1): Apple's four
S/MIME header lines with LF endings, base64 at 76 columns, and a CMS EnvelopedData in BER with
indefinite lengths and a constructed [0] encryptedContent. Ciphers Apple never uses are available
so tests can check how the portal refuses them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP, PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SMIME_HEADERS = (
    b'Content-Type: application/pkcs7-mime; name="smime.p7m"; smime-type=enveloped-data\n'
    b"Content-Transfer-Encoding: base64\n"
    b'Content-Disposition: attachment; filename="smime.p7m"\n'
    b"Content-Description: S/MIME Encrypted Message\n"
)
PAYLOAD_MIME_HEADERS = (
    b"Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
)
EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class UnusableCertificateError(ValueError):
    """The uploaded public key certificate is not one ABM would accept."""


@dataclass(frozen=True)
class _ContentCipher:
    asn1_name: str
    key_size: int
    block_size: int
    is_triple_des: bool = False

    def encrypt(self, *, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
        algorithm = TripleDES(key) if self.is_triple_des else algorithms.AES(key)
        padder = padding.PKCS7(self.block_size * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithm, modes.CBC(iv)).encryptor()
        return encryptor.update(padded) + encryptor.finalize()


CONTENT_CIPHERS = {
    "aes-128-cbc": _ContentCipher("aes128_cbc", key_size=16, block_size=16),
    "aes-192-cbc": _ContentCipher("aes192_cbc", key_size=24, block_size=16),
    "aes-256-cbc": _ContentCipher("aes256_cbc", key_size=32, block_size=16),
    "des-ede3-cbc": _ContentCipher("tripledes_3key", key_size=24, block_size=8, is_triple_des=True),
}
KEY_TRANSPORTS = ("rsa-pkcs1v15", "rsa-oaep")


def server_token_credentials_new(*, issued_at: datetime) -> dict[str, str]:
    """Fresh OAuth credentials in the shapes Apple uses (CK_, CS_, AT_O…O…O<ms>, AS_)."""
    issued_at_ms = int(issued_at.timestamp() * 1000)
    # The ten digits in Apple's access tokens look like an organisation number; never 0-led.
    organisation_digits = 1_000_000_000 + secrets.randbelow(9_000_000_000)
    return {
        "consumer_key": "CK_" + secrets.token_hex(48),
        "consumer_secret": "CS_" + secrets.token_hex(20),
        "access_token": f"AT_O{organisation_digits}O{secrets.token_hex(20)}O{issued_at_ms:013d}",
        "access_secret": "AS_" + secrets.token_hex(20),
    }


def server_token_issue(
    *,
    certificate: bytes,
    consumer_key: str,
    consumer_secret: str,
    access_token: str,
    access_secret: str,
    access_token_expiry: datetime,
    content_cipher: str = "aes-128-cbc",
    key_transport: str = "rsa-pkcs1v15",
    extra_recipients: Sequence[bytes] = (),
    omit_recipient: bool = False,
) -> bytes:
    """Build the .p7m ABM would download for the MDM server whose public key is `certificate`.

    `certificate` and each of `extra_recipients` is an X.509 certificate in PEM or DER.
    Raises UnusableCertificateError for anything else, or when no recipient is left.
    """
    if content_cipher not in CONTENT_CIPHERS:
        raise ValueError(f"unknown content cipher {content_cipher!r}")
    if key_transport not in KEY_TRANSPORTS:
        raise ValueError(f"unknown key transport {key_transport!r}")
    recipient_certificates = [] if omit_recipient else [certificate]
    recipient_certificates.extend(extra_recipients)
    if not recipient_certificates:
        raise UnusableCertificateError("a server token needs at least one recipient")

    expiry_utc = access_token_expiry.astimezone(UTC)
    payload_json = json.dumps(
        {
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "access_token": access_token,
            "access_secret": access_secret,
            "access_token_expiry": expiry_utc.strftime(EXPIRY_FORMAT),
        },
        separators=(",", ":"),
    )
    plaintext = (
        PAYLOAD_MIME_HEADERS
        + b"-----BEGIN MESSAGE-----\n"
        + payload_json.encode()
        + b"\n-----END MESSAGE-----\n"
    )

    cipher = CONTENT_CIPHERS[content_cipher]
    content_key = os.urandom(cipher.key_size)
    iv = os.urandom(cipher.block_size)
    encrypted_content = cipher.encrypt(key=content_key, iv=iv, plaintext=plaintext)
    recipient_infos = cms.RecipientInfos(
        [
            _recipient_info(
                certificate=recipient, content_key=content_key, key_transport=key_transport
            )
            for recipient in recipient_certificates
        ]
    )
    content_encryption_algorithm = cms.EncryptionAlgorithm(
        {"algorithm": cipher.asn1_name, "parameters": core.OctetString(iv)}
    )
    ber = _enveloped_data_ber(
        recipient_infos=recipient_infos,
        content_encryption_algorithm=content_encryption_algorithm,
        encrypted_content=encrypted_content,
    )
    return SMIME_HEADERS + b"\n" + base64.encodebytes(ber)


def _recipient_info(
    *, certificate: bytes, content_key: bytes, key_transport: str
) -> cms.RecipientInfo:
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            parsed = x509.load_pem_x509_certificate(certificate)
        else:
            parsed = x509.load_der_x509_certificate(certificate)
    except ValueError as error:
        raise UnusableCertificateError("this is not a PEM or DER X.509 certificate") from error
    public_key = parsed.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise UnusableCertificateError("the certificate's public key must be RSA")

    if key_transport == "rsa-oaep":
        # SHA-1 with MGF1-SHA-1 are the RSAES-OAEP defaults, so DER writes an empty SEQUENCE;
        # SHA-1 inside OAEP needs no collision resistance, and only tests ask for OAEP anyway.
        oaep_sha1 = OAEP(mgf=MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
        encrypted_key = public_key.encrypt(content_key, oaep_sha1)
        key_encryption_algorithm = cms.KeyEncryptionAlgorithm(
            {
                "algorithm": "rsaes_oaep",
                "parameters": algos.RSAESOAEPParams({"hash_algorithm": {"algorithm": "sha1"}}),
            }
        )
    else:
        encrypted_key = public_key.encrypt(content_key, PKCS1v15())
        key_encryption_algorithm = cms.KeyEncryptionAlgorithm(
            {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}
        )

    # asn1crypto keeps the issuer's original bytes, which is what the recipient matches on.
    tbs_certificate = asn1_x509.Certificate.load(parsed.public_bytes(serialization.Encoding.DER))[
        "tbs_certificate"
    ]
    return cms.RecipientInfo(
        name="ktri",
        value=cms.KeyTransRecipientInfo(
            {
                "version": "v0",
                "rid": cms.RecipientIdentifier(
                    name="issuer_and_serial_number",
                    value=cms.IssuerAndSerialNumber(
                        {
                            "issuer": tbs_certificate["issuer"],
                            "serial_number": tbs_certificate["serial_number"],
                        }
                    ),
                ),
                "key_encryption_algorithm": key_encryption_algorithm,
                "encrypted_key": encrypted_key,
            }
        ),
    )


def _indefinite(identifier: bytes, *contents: bytes) -> bytes:
    """BER constructed value with indefinite length: identifier, 0x80, contents, end-of-contents."""
    return identifier + b"\x80" + b"".join(contents) + b"\x00\x00"


def _enveloped_data_ber(
    *,
    recipient_infos: cms.RecipientInfos,
    content_encryption_algorithm: cms.EncryptionAlgorithm,
    encrypted_content: bytes,
) -> bytes:
    # asn1crypto only writes DER. Apple's layout, reproduced here, makes the four outer
    # constructions indefinite and keeps the recipient infos definite, as in the real token.
    sequence, context_0 = b"\x30", b"\xa0"
    encrypted_content_chunk = core.OctetString(encrypted_content).dump()
    encrypted_content_info = _indefinite(
        sequence,
        cms.ContentType("data").dump(),
        content_encryption_algorithm.dump(),
        _indefinite(context_0, encrypted_content_chunk),
    )
    enveloped_data = _indefinite(
        sequence,
        cms.CMSVersion("v0").dump(),
        recipient_infos.dump(),
        encrypted_content_info,
    )
    return _indefinite(
        sequence,
        cms.ContentType("enveloped_data").dump(),
        _indefinite(context_0, enveloped_data),
    )
