"""The .p7m (CMS enveloped data) ABM wraps a server token in: reading, recipients, decrypting.

Pure functions: bytes in, dataclasses out, ServerTokenError subclasses for anything an admin can
fix. The file format is described in docs/apple-dep.md sections 1, 2 and 9.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import cms
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple.token import (
    DOWNLOAD_AGAIN,
    DamagedTokenError,
    NotAServerTokenError,
    ServerTokenCredentials,
    UnsupportedCipherError,
    WrongRecipientError,
    server_token_from_plaintext,
)

# DER of the OID prefix 1.2.840.113549.1.7 shared by every PKCS#7/CMS content type.
CMS_CONTENT_TYPE_PREFIX = bytes.fromhex("06092a864886f70d0107")
CERTIFICATE = "an X.509 certificate (such as a public key or APNs certificate)"
# What admins upload by mistake: (pattern on the lowercased start, what it is, extra advice).
OTHER_FILE_KINDS = (
    (rb"\Apk(\x03\x04|\x05\x06)", "a ZIP archive", "If it holds the .p7m file, unzip it first. "),
    (rb"\A%pdf-", "a PDF document", ""),
    (rb"\A<(!doctype html|html)", "a web page (HTML) saved from the browser", ""),
    (rb"-----begin certificate-----", CERTIFICATE, ""),
    (rb"-----begin [a-z ]*private key-----", "a private key", "Never upload private keys. "),
)
RSA_PKCS1V15_OID = "1.2.840.113549.1.1.1"
ACCEPTED_CONTENT_CIPHERS = {"aes128_cbc", "aes256_cbc"}
ALGORITHM_NAMES = {
    "tripledes_3key": "3DES (des-ede3-cbc)",
    "des": "DES-CBC",
    "aes192_cbc": "AES-192-CBC",
    "rsaes_oaep": "RSA-OAEP",
}


@sensitive_variables()
def server_token_decrypt(
    data: bytes,
    *,
    private_key_pem: bytes,
    certificate_pem: bytes | None,
    key_validated: bool = False,
) -> ServerTokenCredentials:
    """Decrypt a .p7m as ABM delivers it (or as DER, PEM or bare base64 CMS); expiry unchecked.

    Without the certificate (the command line has only the private key), the token's own
    recipient is taken to be the key's, and a failure says that the key does not fit.
    `key_validated` says the key is one key_pair_generate made and checked, kept encrypted
    since: its RSA consistency check (about 30 ms for 2048 bits) is not repeated.
    """
    # Read first: loading the RSA key costs more than refusing most files that are not tokens.
    content_info = _content_info_load(_cms_ber(data))
    # The key pair is the portal's own; a broken one is a bug, not something the admin can fix.
    private_key = serialization.load_pem_private_key(
        private_key_pem, password=None, unsafe_skip_rsa_key_validation=key_validated
    )
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("private_key_pem is not an RSA key")
    if certificate_pem is None:
        certificate = _certificate_for_recipient(content_info, private_key=private_key)
    else:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        if private_key.public_key() != certificate.public_key():
            raise ValueError("private_key_pem is not the RSA key of certificate_pem")
    _recipient_check(content_info, certificate=certificate)
    try:
        # cryptography only reads DER, and Apple writes indefinite-length BER.
        plaintext = pkcs7.pkcs7_decrypt_der(
            content_info.dump(force=True), certificate, private_key, []
        )
    except ValueError as error:
        if certificate_pem is None:
            raise WrongRecipientError(
                "This server token was not encrypted for this private key. Use the private key "
                "whose public key was uploaded to the MDM server in Apple Business Manager."
            ) from error
        raise _damaged("it could not be decrypted") from error
    return server_token_from_plaintext(plaintext)


@dataclass(frozen=True)
class RecipientID:
    """Who a .p7m is encrypted for: a certificate's issuer and serial number."""

    # asn1crypto's normalised form of the issuer: the same name whatever string types encode it.
    issuer: str
    serial_number: int


def server_token_recipients(data: bytes) -> list[RecipientID]:
    """The recipients a .p7m names, read without any private key; cheap next to decrypting."""
    content_info = _content_info_load(_cms_ber(data))
    return [
        RecipientID(
            issuer=rid.chosen["issuer"].hashable,
            serial_number=rid.chosen["serial_number"].native,
        )
        for info in content_info["content"]["recipient_infos"]
        if info.name == "ktri" and (rid := info.chosen["rid"]).name == "issuer_and_serial_number"
    ]


def certificate_recipient_id(certificate_pem: bytes) -> RecipientID:
    """The recipient a .p7m names when ABM encrypts it for this certificate."""
    certificate = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(certificate_pem).public_bytes(serialization.Encoding.DER)
    )
    return RecipientID(issuer=certificate.issuer.hashable, serial_number=certificate.serial_number)


def _certificate_for_recipient(
    content_info: cms.ContentInfo, *, private_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    """A stand-in certificate that names the token's recipient and carries our public key."""
    recipients = [
        info.chosen["rid"].chosen
        for info in content_info["content"]["recipient_infos"]
        if info.name == "ktri" and info.chosen["rid"].name == "issuer_and_serial_number"
    ]
    if not recipients:
        raise _damaged("it names no recipient")
    now = datetime.now(UTC).replace(microsecond=0)
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": recipients[0]["serial_number"].native,
            "signature": {"algorithm": "sha256_rsa"},
            "issuer": recipients[0]["issuer"],
            "validity": {
                "not_before": asn1_x509.Time({"utc_time": now}),
                "not_after": asn1_x509.Time({"utc_time": now + timedelta(days=1)}),
            },
            "subject": recipients[0]["issuer"],
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(
                private_key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
        }
    )
    signature = private_key.sign(tbs.dump(), padding.PKCS1v15(), hashes.SHA256())
    stand_in = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": "sha256_rsa"},
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(stand_in.dump())


def _not_a_server_token(what: str, *, advice: str = DOWNLOAD_AGAIN) -> NotAServerTokenError:
    return NotAServerTokenError(f"This file is {what}, not an Apple server token. {advice}")


def _damaged(problem: str) -> DamagedTokenError:
    return DamagedTokenError(
        f"This server token is damaged ({problem}); download it again. {DOWNLOAD_AGAIN}"
    )


def _cms_ber(data: bytes) -> bytes:
    """The CMS bytes inside whatever wrapper the upload has, or an error naming what it is."""
    # A byte-order mark is what a Windows text editor leaves when someone "fixes" the file.
    text = data.strip().removeprefix(b"\xef\xbb\xbf")
    if not text:
        raise NotAServerTokenError(f"This file is empty. {DOWNLOAD_AGAIN}")
    _other_file_kinds_refuse(text)
    if _looks_like_cms(data):
        return data
    if text.startswith(b"-----BEGIN "):
        pem = re.search(rb"-----BEGIN (?:PKCS7|CMS)-----(.*?)(?:-----END |$)", text, re.DOTALL)
        if pem is None:
            raise _not_a_server_token("a PEM file of another kind")
        return _base64_decode_damaged(pem.group(1))
    # MIME header fields, folded or not, ending in CRLF or LF; the body is what follows them.
    headers = re.match(rb"(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*)+", text + b"\n")
    if headers is not None:
        if b"pkcs7-mime" not in headers.group(0).lower():
            raise _not_a_server_token("a MIME message of another kind")
        body = text[headers.end() :]
        if not body.strip():
            raise _damaged("it has the S/MIME headers but no content")
        return _base64_decode_damaged(body)
    try:
        decoded = base64.b64decode(re.sub(rb"\s+", b"", text), validate=True)
    except binascii.Error:
        decoded = b""
    if _looks_like_cms(decoded):
        return decoded
    if _is_vpp_token(decoded):
        raise NotAServerTokenError(
            "This file is an Apps and Books (VPP) content token (.vpptoken), not an Apple server "
            f"token. {DOWNLOAD_AGAIN}"
        )
    if _is_der_certificate(data):
        raise _not_a_server_token(CERTIFICATE)
    raise NotAServerTokenError(f"This file is not an Apple server token (.p7m). {DOWNLOAD_AGAIN}")


def _other_file_kinds_refuse(text: bytes) -> None:
    head = text[:1024].lower()
    for pattern, what, advice in OTHER_FILE_KINDS:
        if re.search(pattern, head):
            raise _not_a_server_token(what, advice=advice + DOWNLOAD_AGAIN)


def _looks_like_cms(ber: bytes) -> bool:
    return ber[:1] == b"\x30" and CMS_CONTENT_TYPE_PREFIX in ber[2:16]


def _base64_decode_damaged(body: bytes) -> bytes:
    try:
        ber = base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
    except binascii.Error as error:
        raise _damaged("its base64 text is broken") from error
    if not _looks_like_cms(ber):
        raise _damaged("its content is not a CMS structure")
    return ber


def _is_vpp_token(decoded: bytes) -> bool:
    try:
        fields = json.loads(decoded)
    except (ValueError, RecursionError):
        return False
    return isinstance(fields, dict) and {"token", "expDate"} <= fields.keys()


def _is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def _content_info_load(ber: bytes) -> cms.ContentInfo:
    try:
        content_info = cms.ContentInfo.load(ber)
        # Parse everything now, so a truncated or corrupt file fails here and not halfway later.
        content_info.dump(force=True)
        content_type = content_info["content_type"].native
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        raise _damaged("its ASN.1 structure is broken or cut short") from error
    if content_type == "signed_data":
        raise _not_a_server_token("a signed, not encrypted, CMS file")
    if content_type != "enveloped_data":
        raise _not_a_server_token(f"a CMS file of type {content_type}, not encrypted")
    return content_info


def _recipient_check(content_info: cms.ContentInfo, *, certificate: x509.Certificate) -> None:
    """Refuse tokens for another public key or in ciphers Apple does not use, before decrypting."""
    ours = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    enveloped_data = content_info["content"]
    our_recipient = None
    for recipient_info in enveloped_data["recipient_infos"]:
        if recipient_info.name != "ktri":
            continue
        rid = recipient_info.chosen["rid"]
        if rid.name == "issuer_and_serial_number":
            matches = (
                rid.chosen["issuer"] == ours.issuer
                and rid.chosen["serial_number"].native == ours.serial_number
            )
        else:
            matches = ours.key_identifier is not None and rid.chosen.native == ours.key_identifier
        if matches:
            our_recipient = recipient_info.chosen
    if our_recipient is None:
        raise WrongRecipientError(
            "This server token was encrypted for a different public key. Upload this account's "
            "public key to the MDM server in Apple Business Manager, then download a new token "
            "and upload it here."
        )
    key_transport = our_recipient["key_encryption_algorithm"]["algorithm"]
    if key_transport.dotted != RSA_PKCS1V15_OID:
        raise UnsupportedCipherError(
            algorithm=ALGORITHM_NAMES.get(key_transport.native, key_transport.native)
        )
    content_cipher = enveloped_data["encrypted_content_info"]["content_encryption_algorithm"]
    cipher_name = content_cipher["algorithm"].native
    if cipher_name not in ACCEPTED_CONTENT_CIPHERS:
        raise UnsupportedCipherError(algorithm=ALGORITHM_NAMES.get(cipher_name, cipher_name))
