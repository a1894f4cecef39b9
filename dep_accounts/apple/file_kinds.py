"""What kind of Apple credential file an upload is, told from its bytes alone.

Admins pick the wrong file often: a DEP server token where a content token belongs, the vendor
certificate instead of the push certificate (micromdm#366), a private key. Naming the file they
did upload is the clearest way to say what to do instead. Pure function, no Django; nothing here
decrypts, and nothing is trusted beyond telling kinds apart. See docs/apple-vpp-apns.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import plistlib
import re
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import NameOID

# DER of the OID prefix 1.2.840.113549.1.7 shared by every PKCS#7/CMS content type.
CMS_CONTENT_TYPE_PREFIX = bytes.fromhex("06092a864886f70d0107")
PUSH_TOPIC_PREFIX = "com.apple.mgmt."
SNIFF_LIMIT = 256 * 1024


class FileKind(StrEnum):
    CONTENT_TOKEN = "content_token"
    SERVER_TOKEN = "server_token"
    PUSH_CERTIFICATE = "push_certificate"
    CERTIFICATE = "certificate"
    PRIVATE_KEY = "private_key"
    CERTIFICATE_REQUEST = "certificate_request"
    PUSH_CERTIFICATE_REQUEST = "push_certificate_request"
    ARCHIVE = "archive"
    DOCUMENT = "document"
    EMPTY = "empty"
    UNKNOWN = "unknown"


# How each kind is named to an admin ("This file is ...").
FILE_KIND_NAMES = {
    FileKind.CONTENT_TOKEN: "an Apps and Books content token (.vpptoken)",
    FileKind.SERVER_TOKEN: "a DEP server token (.p7m) from Your MDM Servers in Apple Business "
    "Manager",
    FileKind.PUSH_CERTIFICATE: "an APNs push certificate (.pem) from the Apple Push Certificates "
    "Portal",
    FileKind.CERTIFICATE: "an X.509 certificate that is not an APNs push certificate (such as "
    "the MDM vendor certificate or a public key)",
    FileKind.PRIVATE_KEY: "a private key",
    FileKind.CERTIFICATE_REQUEST: "a certificate signing request (CSR)",
    FileKind.PUSH_CERTIFICATE_REQUEST: "a signed push-certificate request, which goes to the "
    "Apple Push Certificates Portal",
    FileKind.ARCHIVE: "a ZIP archive",
    FileKind.DOCUMENT: "a document or web page (PDF, HTML or XML)",
    FileKind.EMPTY: "empty",
    FileKind.UNKNOWN: "not a file Apple issues",
}


def file_kind_detect(data: bytes) -> FileKind:
    """The kind of credential file `data` is; UNKNOWN when it is none that Apple issues."""
    head = data[:SNIFF_LIMIT]
    text = head.strip()
    if not text:
        return FileKind.EMPTY
    lowered = text[:4096].lower()
    if re.search(rb"-----begin [a-z ]*private key-----", lowered):
        return FileKind.PRIVATE_KEY
    if b"-----begin certificate request-----" in lowered or (
        b"-----begin new certificate request-----" in lowered
    ):
        return FileKind.CERTIFICATE_REQUEST
    if b"-----begin certificate-----" in lowered:
        return _certificate_kind(head)
    if lowered.startswith((b"content-type:", b"mime-version:")) and b"pkcs7" in lowered:
        return FileKind.SERVER_TOKEN
    if b"-----begin pkcs7-----" in lowered or _is_cms(text):
        return FileKind.SERVER_TOKEN
    if re.match(rb"pk(\x03\x04|\x05\x06)", lowered):
        return FileKind.ARCHIVE
    if lowered.startswith((b"%pdf-", b"<!doctype html", b"<html")):
        return FileKind.DOCUMENT
    if lowered.startswith(b"<?xml") or lowered.startswith(b"bplist"):
        return _plist_kind(text)
    if text[:1] == b"\x30":
        return _der_kind(text)
    decoded = _base64_decoded(text)
    if decoded is None:
        return FileKind.UNKNOWN
    if _is_cms(decoded):
        return FileKind.SERVER_TOKEN
    if decoded.lstrip()[:1] == b"{":
        return _json_kind(decoded)
    return _plist_kind(decoded)


def _is_cms(data: bytes) -> bool:
    return data[:1] == b"\x30" and CMS_CONTENT_TYPE_PREFIX in data[:24]


def _base64_decoded(text: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _certificate_kind(data: bytes) -> FileKind:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        return FileKind.CERTIFICATE
    return (
        FileKind.PUSH_CERTIFICATE
        if any(push_topic(certificate) for certificate in certificates)
        else FileKind.CERTIFICATE
    )


def _der_kind(data: bytes) -> FileKind:
    try:
        certificate = x509.load_der_x509_certificate(data)
    except ValueError:
        return FileKind.UNKNOWN
    return FileKind.PUSH_CERTIFICATE if push_topic(certificate) else FileKind.CERTIFICATE


def _json_kind(data: bytes) -> FileKind:
    # Only the top-level keys matter; a deeply nested file is not a content token either way.
    try:
        fields = json.loads(data)
    except (ValueError, RecursionError):
        return FileKind.UNKNOWN
    if isinstance(fields, dict) and {"token", "expDate"} <= fields.keys():
        return FileKind.CONTENT_TOKEN
    return FileKind.UNKNOWN


def _plist_kind(data: bytes) -> FileKind:
    try:
        fields = plistlib.loads(data)
    except Exception:  # plistlib raises many kinds of error on arbitrary bytes
        return FileKind.DOCUMENT if data.lstrip().startswith(b"<") else FileKind.UNKNOWN
    if isinstance(fields, dict) and "PushCertRequestCSR" in fields:
        return FileKind.PUSH_CERTIFICATE_REQUEST
    return FileKind.DOCUMENT


def push_topic(certificate: x509.Certificate) -> str | None:
    """The APNs topic: the subject's UID that starts with com.apple.mgmt., if there is one."""
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.USER_ID):
        value = attribute.value
        if isinstance(value, str) and value.startswith(PUSH_TOPIC_PREFIX):
            return value
    return None
