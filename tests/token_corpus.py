"""Bad server token files, generated: what admins upload by mistake, and what an attacker might.

Each `CorpusFile` builds its bytes for a `TokenTarget` (the DEP account that receives the upload,
so encrypted files can be encrypted for its public key) and says what the portal must answer.
tests/test_reliability_token_files.py uploads every file through the Edit and Add DEP Account
forms; `len(CORPUS)` is the figure the README quotes.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from asn1crypto import cms, core, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from applesim.tokens import (
    EXPIRY_FORMAT,
    PAYLOAD_MIME_HEADERS,
    SMIME_HEADERS,
    server_token_credentials_new,
    server_token_issue,
)
from dep_accounts.apple.keypair import KeyPair, key_pair_generate
from dep_accounts.apple.token import PAYLOAD_FIELDS

if TYPE_CHECKING:
    from dep_accounts.models import DEPAccount
    from tests.conftest import ABM

DEPUTY_APPLE_ID = "deputy@springfield.example"
TEN_MEGABYTES = 10 * 1024 * 1024
# An array opened 40,000 times: what overflows a recursive JSON parser (issue 13, finding 6).
DEEP_JSON = b"[" * 40_000


@dataclass(frozen=True)
class TokenTarget:
    """Where a corpus file is aimed.

    `server_uuid` is the MDM server the account is (Edit) or is about to be (Add) for;
    `other_server_uuid` is another MDM server of the organisation in ABM.
    """

    abm: ABM
    account: DEPAccount
    server_uuid: str
    other_server_uuid: str

    @property
    def certificate_pem(self) -> bytes:
        return self.account.key_pair.certificate_pem.encode()

    @classmethod
    def renewal(cls, abm: ABM, account: DEPAccount) -> TokenTarget:
        """Files for the renewal of `account`, which manages abm's Springfield MDM."""
        other = abm.server_add("Shelbyville MDM")
        return cls(abm=abm, account=account, server_uuid=abm.server_uuid, other_server_uuid=other)

    @classmethod
    def first_token(cls, abm: ABM, account: DEPAccount) -> TokenTarget:
        """Files for the first token of `account`, a new account, while Springfield MDM is
        already managed here by another account."""
        server = abm.server_add("Shelbyville MDM")
        return cls(abm=abm, account=account, server_uuid=server, other_server_uuid=abm.server_uuid)


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus and the portal's expected answer to it.

    `says` is a phrase of the message shown to the admin (Edit and Add alike unless `add_says`);
    `reason` is the audit event's reason. A file with `accepted` is a valid token the portal
    takes, storing only `stored_name`. `add_previews` marks a file the Add flow rightly takes to
    its confirm step (a first token has no Apple ID to differ from).
    """

    name: str
    build: Callable[[TokenTarget], bytes]
    says: str = ""
    reason: str = "bad_file"
    add_says: str = ""
    add_reason: str = ""
    add_previews: bool = False
    file_name: str = "smime.p7m"
    accepted: bool = False
    stored_name: str = ""
    oversized: bool = False


def p7m_encrypted(plaintext: bytes, *, certificate_pem: bytes) -> bytes:
    """Any plaintext in Apple's wrapping (S/MIME headers, base64 of a CMS EnvelopedData).

    cryptography encrypts it with AES-128-CBC and RSA PKCS#1 v1.5, as Apple does, so what the
    portal meets after decrypting is exactly `plaintext`.
    """
    envelope = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(plaintext)
        .add_recipient(x509.load_pem_x509_certificate(certificate_pem))
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    return SMIME_HEADERS + b"\n" + base64.encodebytes(envelope)


def payload_fields() -> dict[str, str]:
    """The five fields of a good payload, with credentials in Apple's shapes."""
    now = datetime.now(UTC)
    return {
        **server_token_credentials_new(issued_at=now),
        "access_token_expiry": f"{now + timedelta(days=365):{EXPIRY_FORMAT}}",
    }


def payload(fields: dict[str, str]) -> bytes:
    """The decrypted content of a server token carrying `fields`."""
    message = json.dumps(fields, separators=(",", ":")).encode()
    return (
        PAYLOAD_MIME_HEADERS + b"-----BEGIN MESSAGE-----\n" + message + b"\n-----END MESSAGE-----\n"
    )


@functools.cache
def other_key_pair(common_name: str) -> KeyPair:
    """Key pairs of other MDM servers, generated once per test run."""
    return key_pair_generate(common_name=common_name)


def issued(target: TokenTarget, **options: object) -> bytes:
    """A token as ABM builds it for the target's public key, with credentials Apple never saw."""
    return server_token_issue(
        certificate=target.certificate_pem,
        access_token_expiry=datetime.now(UTC) + timedelta(days=365),
        **server_token_credentials_new(issued_at=datetime.now(UTC)),
        **options,
    )


def downloaded(target: TokenTarget, **options: object) -> bytes:
    """A real download from applesim's ABM for the target's MDM server (a valid token)."""
    return target.abm.token_for(target.account, server_uuid=target.server_uuid, **options)


def _truncated_base64(target: TokenTarget) -> bytes:
    return b"".join(issued(target).splitlines(keepends=True)[:12])


def _bad_base64(target: TokenTarget) -> bytes:
    token = bytearray(issued(target))
    token[400] = ord("*")
    return bytes(token)


def _corrupted_ciphertext(target: TokenTarget) -> bytes:
    token = issued(target)
    headers, body = token.split(b"\n\n", 1)
    ber = bytearray(base64.b64decode(body))
    ber[-20] ^= 0xFF
    return headers + b"\n\n" + base64.encodebytes(bytes(ber))


def _signed_data_der(target: TokenTarget) -> bytes:
    signer = other_key_pair("another-mdm-server")
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(b"hello")
        .add_signer(
            x509.load_pem_x509_certificate(signer.certificate_pem),
            serialization.load_pem_private_key(signer.private_key_pem, password=None),
            hashes.SHA256(),
        )
        .sign(serialization.Encoding.DER, [])
    )


def _data_cms_pem(target: TokenTarget) -> bytes:
    content_info = cms.ContentInfo({"content_type": "data", "content": core.OctetString(b"hi")})
    return pem.armor("PKCS7", content_info.dump())


def _for_another_certificate(target: TokenTarget) -> bytes:
    other = other_key_pair("another-mdm-server")
    return server_token_issue(
        certificate=other.certificate_pem,
        access_token_expiry=datetime.now(UTC) + timedelta(days=365),
        **server_token_credentials_new(issued_at=datetime.now(UTC)),
    )


def _for_several_other_certificates(target: TokenTarget) -> bytes:
    return issued(
        target,
        omit_recipient=True,
        extra_recipients=[
            other_key_pair("another-mdm-server").certificate_pem,
            other_key_pair("a-third-mdm-server").certificate_pem,
        ],
    )


def _payload_without(field: str) -> Callable[[TokenTarget], bytes]:
    def build(target: TokenTarget) -> bytes:
        fields = payload_fields()
        del fields[field]
        return p7m_encrypted(payload(fields), certificate_pem=target.certificate_pem)

    return build


def _payload_without_markers(target: TokenTarget) -> bytes:
    plaintext = PAYLOAD_MIME_HEADERS + json.dumps(payload_fields()).encode() + b"\n"
    return p7m_encrypted(plaintext, certificate_pem=target.certificate_pem)


def _payload_not_json(target: TokenTarget) -> bytes:
    plaintext = b"-----BEGIN MESSAGE-----\n{not json\n-----END MESSAGE-----\n"
    return p7m_encrypted(plaintext, certificate_pem=target.certificate_pem)


def _payload_nested_deep(target: TokenTarget) -> bytes:
    """An attacker's token: properly encrypted, its JSON 40,000 brackets deep."""
    plaintext = b"-----BEGIN MESSAGE-----\n" + DEEP_JSON + b"\n-----END MESSAGE-----\n"
    return p7m_encrypted(PAYLOAD_MIME_HEADERS + plaintext, certificate_pem=target.certificate_pem)


def _payload_with_wrong_expiry(target: TokenTarget) -> bytes:
    fields = {**payload_fields(), "access_token_expiry": "17/01/2027 11:02"}
    return p7m_encrypted(payload(fields), certificate_pem=target.certificate_pem)


def _expired(target: TokenTarget) -> bytes:
    """Downloaded in ABM 31 days ago, valid for 30."""
    control = target.abm.sim.control
    control.sign_in(org_id=target.abm.org_id, apple_id=target.abm.apple_id)
    control.public_key_upload(server_uuid=target.server_uuid, certificate=target.certificate_pem)
    return control.token_download(
        server_uuid=target.server_uuid,
        validity_days=30,
        issued_at=datetime.now(UTC) - timedelta(days=31),
    )


def _vpp_token(target: TokenTarget) -> bytes:
    content = {"token": "dGVzdA==", "expDate": "2027-01-17T11:02:21+0000", "orgName": "Springfield"}
    return base64.b64encode(json.dumps(content).encode())


def _apns_certificate(target: TokenTarget) -> bytes:
    key_pair = other_key_pair("another-mdm-server")
    private_key = serialization.load_pem_private_key(key_pair.private_key_pem, password=None)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, "com.apple.mgmt.External.0f8e2b3c"),
            x509.NameAttribute(NameOID.COMMON_NAME, "APSP:0f8e2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _zip_of_a_valid_token(target: TokenTarget) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("smime.p7m", issued(target))
    return archive.getvalue()


def _html_page(target: TokenTarget) -> bytes:
    return (
        b"\n<!DOCTYPE html>\n<html lang='en'><head><title>Apple Business Manager</title></head>"
        b"<body><p>Your MDM Servers</p></body></html>\n"
    )


def _reset_by_a_newer_download(target: TokenTarget) -> bytes:
    older = downloaded(target)
    downloaded(target)
    return older


def _for_the_other_server(target: TokenTarget) -> bytes:
    return target.abm.token_for(target.account, server_uuid=target.other_server_uuid)


CORPUS: list[CorpusFile] = [
    CorpusFile("empty", lambda target: b"", says="This file is empty: the download did not finish"),
    CorpusFile("one_byte", lambda target: b"0", says="This file is not an Apple server token"),
    CorpusFile(
        "noise_10_mb",
        lambda target: random.Random(7).randbytes(TEN_MEGABYTES),
        says="a server token is about 2 KB. Choose the .p7m file",
        file_name="smime.p7m",
        reason="too_large",
        oversized=True,
    ),
    CorpusFile(
        "truncated_base64",
        _truncated_base64,
        says="its ASN.1 structure is broken or cut short); download it again",
    ),
    CorpusFile("bad_base64", _bad_base64, says="its base64 text is broken); download it again"),
    CorpusFile(
        "smime_headers_without_body",
        lambda target: SMIME_HEADERS + b"\n",
        says="it has the S/MIME headers but no content",
    ),
    CorpusFile("corrupted_ciphertext", _corrupted_ciphertext, says="it could not be decrypted"),
    CorpusFile(
        "der_signed_data",
        _signed_data_der,
        says="a signed, not encrypted, CMS file",
        file_name="signed.p7s",
    ),
    CorpusFile(
        "pem_cms_data",
        _data_cms_pem,
        says="a CMS file of type data, not encrypted",
        file_name="token.pem",
    ),
    CorpusFile(
        "encrypted_for_another_certificate",
        _for_another_certificate,
        says="encrypted for a different public key. Upload this account's public key",
    ),
    CorpusFile(
        "several_recipients_none_ours",
        _for_several_other_certificates,
        says="encrypted for a different public key",
    ),
    CorpusFile(
        "triple_des",
        lambda target: issued(target, content_cipher="des-ede3-cbc"),
        says="encrypted with 3DES (des-ede3-cbc), which the portal does not accept",
    ),
    CorpusFile(
        "aes_192",
        lambda target: issued(target, content_cipher="aes-192-cbc"),
        says="encrypted with AES-192-CBC",
    ),
    CorpusFile(
        "rsa_oaep",
        lambda target: issued(target, key_transport="rsa-oaep"),
        says="encrypted with RSA-OAEP",
    ),
    CorpusFile(
        "payload_without_message_markers",
        _payload_without_markers,
        says="has no -----BEGIN MESSAGE----- ... -----END MESSAGE----- block",
    ),
    CorpusFile("payload_not_json", _payload_not_json, says="its content is not valid JSON"),
    CorpusFile(
        "payload_nested_40000_deep",
        _payload_nested_deep,
        says="its content is JSON nested too deeply to be a server token",
    ),
    CorpusFile(
        "base64_of_json_nested_40000_deep",
        lambda target: base64.encodebytes(DEEP_JSON),
        says="This file is not an Apple server token (.p7m)",
    ),
    *(
        CorpusFile(
            f"payload_without_{field}",
            _payload_without(field),
            says=f"its content is missing {field}. Download a new token",
        )
        for field in PAYLOAD_FIELDS
    ),
    CorpusFile(
        "expiry_in_another_format",
        _payload_with_wrong_expiry,
        says="access_token_expiry is '17/01/2027 11:02', not a UTC date",
    ),
    CorpusFile(
        "expired",
        _expired,
        says="In Apple Business Manager, download a new token for this MDM server",
    ),
    CorpusFile(
        "vpp_token",
        _vpp_token,
        says="an Apps and Books (VPP) content token (.vpptoken)",
        file_name="sToken_for_Springfield.vpptoken",
    ),
    CorpusFile(
        "apns_certificate",
        _apns_certificate,
        says="an X.509 certificate (such as a public key or APNs certificate)",
        file_name="MDM_ Springfield_Certificate.pem",
    ),
    CorpusFile(
        "own_public_key",
        lambda target: target.certificate_pem,
        says="an X.509 certificate",
        file_name="mdmportal_1_public_key.pem",
    ),
    CorpusFile(
        "private_key",
        lambda target: other_key_pair("another-mdm-server").private_key_pem,
        says="a private key, not an Apple server token. Never upload private keys.",
        file_name="private-key.pem",
    ),
    CorpusFile(
        "html_page",
        _html_page,
        says="a web page (HTML) saved from the browser",
        # What old browsers sent: the whole Windows path.
        file_name="C:\\Users\\alex\\Downloads\\Apple Business Manager.html",
        stored_name="Apple Business Manager.html",
    ),
    CorpusFile(
        "pdf",
        lambda target: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        says="a PDF document",
        file_name="token.pdf",
    ),
    CorpusFile(
        "zip_archive",
        _zip_of_a_valid_token,
        says="a ZIP archive, not an Apple server token. If it holds the .p7m file, unzip it",
        file_name="Springfield MDM_Token.zip",
    ),
    CorpusFile(
        "name_with_path_separators",
        downloaded,
        file_name="../../etc/passwd.p7m",
        accepted=True,
        stored_name="passwd.p7m",
    ),
    CorpusFile(
        "name_with_control_characters",
        downloaded,
        file_name="smime\x1b[2J\x07\x08\x00\x7f.p7m",
        accepted=True,
        stored_name="smime[2J.p7m",
    ),
    CorpusFile(
        "valid_token_for_another_mdm_server",
        _for_the_other_server,
        says="or add this file as a new DEP account",
        reason="wrong_server",
        # In the Add flow the other server is the one an existing DEP account already manages.
        add_says="This MDM server is already added as",
        add_reason="wrong_server",
    ),
    CorpusFile(
        "valid_token_from_another_apple_id",
        lambda target: downloaded(target, apple_id=DEPUTY_APPLE_ID),
        says="tick “The Apple ID that manages this server in ABM has changed” and save again",
        reason="apple_id_changed",
        add_says=DEPUTY_APPLE_ID,
        add_previews=True,
    ),
    CorpusFile(
        "reset_by_a_newer_download",
        _reset_by_a_newer_download,
        says="Apple does not accept this server token: it was replaced by a newer download",
        reason="apple_refused",
    ),
]
