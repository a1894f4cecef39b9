from __future__ import annotations

import base64
import io
import json
import random
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from applesim.tokens import server_token_credentials_new, server_token_issue
from dep_accounts.apple.envelope import server_token_decrypt
from dep_accounts.apple.keypair import KeyPair, key_pair_generate
from dep_accounts.apple.token import (
    BadExpiryError,
    DamagedTokenError,
    NotAServerTokenError,
    PayloadFieldsMissingError,
    ServerTokenCredentials,
    ServerTokenError,
    TokenExpiredError,
    UnsupportedCipherError,
    WrongRecipientError,
    server_token_check_usable,
)

REAL_TOKEN_DIR = Path(__file__).resolve().parent / "fixtures" / "apple-real-token"
ISSUED_AT = datetime(2025, 1, 17, 11, 2, 21, 803000, tzinfo=UTC)
EXPIRY = datetime(2026, 1, 17, 11, 2, 21, tzinfo=UTC)
CREDENTIALS = server_token_credentials_new(issued_at=ISSUED_AT)
APPLE_HEADERS = (
    b'Content-Type: application/pkcs7-mime; name="smime.p7m"; smime-type=enveloped-data\n'
    b"Content-Transfer-Encoding: base64\n"
    b'Content-Disposition: attachment; filename="smime.p7m"\n'
    b"Content-Description: S/MIME Encrypted Message\n"
    b"\n"
)
PAYLOAD_MIME_HEADERS = (
    b"Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
)


@pytest.fixture(scope="module")
def key_pair() -> KeyPair:
    return key_pair_generate(common_name="mdmportal-dep-account-1")


@pytest.fixture(scope="module")
def other_key_pair() -> KeyPair:
    return key_pair_generate(common_name="another-mdm-server")


@pytest.fixture(scope="module")
def third_key_pair() -> KeyPair:
    return key_pair_generate(common_name="a-third-mdm-server")


@pytest.fixture(scope="module")
def real_token_file() -> bytes:
    return (REAL_TOKEN_DIR / "server-token.p7m").read_bytes()


def real_token_decrypt(data: bytes) -> ServerTokenCredentials:
    return server_token_decrypt(
        data,
        private_key_pem=(REAL_TOKEN_DIR / "private-key.pem").read_bytes(),
        certificate_pem=(REAL_TOKEN_DIR / "public-cert.pem").read_bytes(),
    )


def issue(key_pair: KeyPair, **options: object) -> bytes:
    return server_token_issue(
        certificate=key_pair.certificate_pem,
        access_token_expiry=EXPIRY,
        **CREDENTIALS,
        **options,
    )


def decrypt(data: bytes, key_pair: KeyPair) -> ServerTokenCredentials:
    return server_token_decrypt(
        data, private_key_pem=key_pair.private_key_pem, certificate_pem=key_pair.certificate_pem
    )


def p7m_body(p7m: bytes) -> bytes:
    return base64.b64decode(re.split(rb"\r?\n\r?\n", p7m, maxsplit=1)[1])


def envelope(plaintext: bytes, key_pair: KeyPair) -> bytes:
    """Encrypt any plaintext for the key pair, as DER CMS, with cryptography's own builder."""
    certificate = x509.load_pem_x509_certificate(key_pair.certificate_pem)
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(plaintext)
        .add_recipient(certificate)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def payload(fields: dict[str, object]) -> bytes:
    message = json.dumps(fields, separators=(",", ":")).encode()
    return (
        PAYLOAD_MIME_HEADERS + b"-----BEGIN MESSAGE-----\n" + message + b"\n-----END MESSAGE-----\n"
    )


def valid_fields() -> dict[str, object]:
    return {**CREDENTIALS, "access_token_expiry": "2026-01-17T11:02:21Z"}


def raised(error_class: type[ServerTokenError], data: bytes, key_pair: KeyPair) -> str:
    """Decrypt, expect `error_class`, check the message is admin-facing, and return it."""
    with pytest.raises(error_class) as caught:
        decrypt(data, key_pair)
    error = caught.value
    assert str(error) == error.message
    assert "\n" not in error.message
    assert not any(secret in error.message for secret in CREDENTIALS.values())
    return error.message


def test_real_apple_token_decrypts_with_its_key(real_token_file: bytes) -> None:
    token = real_token_decrypt(real_token_file)

    assert token.access_token_expiry == datetime(2026, 1, 17, 11, 2, 21, tzinfo=UTC)
    assert token.consumer_key.startswith("CK_75b2eb55cec9641e869a7d2c88b4bf1f")
    assert token.access_token.startswith("AT_O")
    assert token.consumer_secret.startswith("CS_")
    assert token.access_secret.startswith("AS_")


def test_real_apple_token_decrypts_with_crlf_line_endings(real_token_file: bytes) -> None:
    crlf = real_token_file.replace(b"\n", b"\r\n")

    assert real_token_decrypt(crlf) == real_token_decrypt(real_token_file)


def test_real_apple_token_decrypts_after_a_windows_editor_saved_it(
    real_token_file: bytes,
) -> None:
    edited = b"\xef\xbb\xbf" + real_token_file.replace(b"\n", b"\r\n") + b"\r\n\r\n"

    assert real_token_decrypt(edited) == real_token_decrypt(real_token_file)


@pytest.mark.parametrize("content_cipher", ["aes-128-cbc", "aes-256-cbc"])
def test_issued_token_round_trips(key_pair: KeyPair, content_cipher: str) -> None:
    token = decrypt(issue(key_pair, content_cipher=content_cipher), key_pair)

    assert token == ServerTokenCredentials(**CREDENTIALS, access_token_expiry=EXPIRY)


def test_a_generated_key_decrypts_the_same_without_repeating_its_rsa_check(
    key_pair: KeyPair,
) -> None:
    token_file = issue(key_pair)
    checked = server_token_decrypt(
        token_file,
        private_key_pem=key_pair.private_key_pem,
        certificate_pem=key_pair.certificate_pem,
        key_validated=True,
    )
    assert checked == decrypt(token_file, key_pair)
    assert checked.consumer_key == CREDENTIALS["consumer_key"]


def test_issued_token_decrypts_as_der_cms(key_pair: KeyPair) -> None:
    der = cms.ContentInfo.load(p7m_body(issue(key_pair))).dump(force=True)

    assert decrypt(der, key_pair).consumer_key == CREDENTIALS["consumer_key"]


def test_issued_token_decrypts_as_raw_ber_cms(key_pair: KeyPair) -> None:
    assert decrypt(p7m_body(issue(key_pair)), key_pair).access_token_expiry == EXPIRY


@pytest.mark.parametrize("label", [b"PKCS7", b"CMS"])
def test_issued_token_decrypts_as_pem_cms(key_pair: KeyPair, label: bytes) -> None:
    der = cms.ContentInfo.load(p7m_body(issue(key_pair))).dump(force=True)
    pem = (
        b"-----BEGIN " + label + b"-----\n"
        + base64.encodebytes(der)
        + b"-----END " + label + b"-----\n"
    )  # fmt: skip

    assert decrypt(pem, key_pair).access_secret == CREDENTIALS["access_secret"]


def test_issued_token_decrypts_as_base64_without_headers(key_pair: KeyPair) -> None:
    body = issue(key_pair).split(b"\n\n", 1)[1]

    assert decrypt(body, key_pair).consumer_secret == CREDENTIALS["consumer_secret"]


def test_token_for_several_recipients_decrypts_for_ours(
    key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    p7m = server_token_issue(
        certificate=other_key_pair.certificate_pem,
        access_token_expiry=EXPIRY,
        extra_recipients=[key_pair.certificate_pem],
        **CREDENTIALS,
    )

    assert decrypt(p7m, key_pair).access_token == CREDENTIALS["access_token"]


def test_issued_token_is_shaped_like_the_real_one(
    key_pair: KeyPair, real_token_file: bytes
) -> None:
    issued = issue(key_pair)
    issued_headers, issued_base64 = issued.split(b"\n\n", 1)
    real_headers, real_base64 = real_token_file.split(b"\n\n", 1)

    assert issued_headers + b"\n\n" == APPLE_HEADERS
    assert issued_headers == real_headers
    assert issued_base64.startswith(b"MIAGCSqGSIb3DQEHA6CA")
    assert real_base64.startswith(b"MIAGCSqGSIb3DQEHA6CA")
    assert {len(line) for line in issued_base64.splitlines()[:-1]} == {76}
    assert issued.endswith(b"AAAAAAAAAAAAAA==\n")
    ber = p7m_body(issued)
    # Indefinite lengths down to a constructed [0] holding one OCTET STRING, then five EOCs.
    assert ber.startswith(bytes.fromhex("3080 06092a864886f70d010703 a080 3080 020100"))
    assert ber.endswith(b"\x00" * 10)
    assert bytes.fromhex("a080 048202") in ber
    with pytest.raises(ValueError):
        pkcs7.pkcs7_decrypt_der(
            ber,
            x509.load_pem_x509_certificate(key_pair.certificate_pem),
            serialization.load_pem_private_key(key_pair.private_key_pem, password=None),
            [],
        )


def test_issued_token_carries_apples_algorithms(key_pair: KeyPair) -> None:
    enveloped_data = cms.ContentInfo.load(p7m_body(issue(key_pair)))["content"]
    (recipient,) = enveloped_data["recipient_infos"]
    content_info = enveloped_data["encrypted_content_info"]
    certificate = x509.load_pem_x509_certificate(key_pair.certificate_pem)

    assert enveloped_data["version"].native == "v0"
    assert recipient.name == "ktri"
    assert recipient.chosen["version"].native == "v0"
    assert recipient.chosen["rid"].chosen["serial_number"].native == certificate.serial_number
    assert recipient.chosen["key_encryption_algorithm"].dump().hex() == (
        "300d06092a864886f70d0101010500"
    )
    assert len(recipient.chosen["encrypted_key"].native) == 256
    assert content_info["content_type"].native == "data"
    assert content_info["content_encryption_algorithm"]["algorithm"].native == "aes128_cbc"
    assert len(content_info["content_encryption_algorithm"]["parameters"].native) == 16


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_issued_token_decrypts_with_openssl(key_pair: KeyPair, tmp_path: Path) -> None:
    (tmp_path / "token.p7m").write_bytes(issue(key_pair))
    (tmp_path / "key.pem").write_bytes(key_pair.private_key_pem)
    result = subprocess.run(
        ["openssl", "smime", "-decrypt", "-in", "token.p7m", "-inkey", "key.pem"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )

    assert result.stdout == payload({**CREDENTIALS, "access_token_expiry": "2026-01-17T11:02:21Z"})


def test_issued_credentials_have_apples_shapes() -> None:
    assert re.fullmatch(r"CK_[0-9a-f]{96}", CREDENTIALS["consumer_key"])
    assert re.fullmatch(r"CS_[0-9a-f]{40}", CREDENTIALS["consumer_secret"])
    assert re.fullmatch(r"AT_O\d{10}O[0-9a-f]{40}O1737111741803", CREDENTIALS["access_token"])
    assert re.fullmatch(r"AS_[0-9a-f]{40}", CREDENTIALS["access_secret"])


def test_generated_key_pair_is_an_rsa_2048_self_signed_certificate(key_pair: KeyPair) -> None:
    certificate = x509.load_pem_x509_certificate(key_pair.certificate_pem)
    private_key = serialization.load_pem_private_key(key_pair.private_key_pem, password=None)

    assert key_pair.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert private_key.key_size == 2048
    assert certificate.public_key() == private_key.public_key()
    assert certificate.subject == certificate.issuer
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "mdmportal-dep-account-1"
    )
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "mdmportal"
    )
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime == timedelta(days=731)
    basic_constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic_constraints.critical and not basic_constraints.value.ca
    key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature and key_usage.key_encipherment
    assert "PRIVATE" not in repr(key_pair)


def test_server_token_repr_and_str_never_show_secrets(real_token_file: bytes) -> None:
    token = real_token_decrypt(real_token_file)
    shown = [repr(token), str(token), f"{token}", repr([token])]

    for text in shown:
        for secret in (
            token.consumer_key,
            token.consumer_secret,
            token.access_token,
            token.access_secret,
        ):
            assert secret not in text
            assert secret[3:12] not in text
        assert token.consumer_key_fingerprint in text
        assert "2026-01-17T11:02:21Z" in text
    assert re.fullmatch(r"SHA256:([0-9a-f]{4}:){3}[0-9a-f]{4}", token.consumer_key_fingerprint)


def test_server_token_survives_json_storage(real_token_file: bytes) -> None:
    token = real_token_decrypt(real_token_file)

    assert ServerTokenCredentials.from_json(token.to_json()) == token
    assert json.loads(token.to_json())["access_token_expiry"] == "2026-01-17T11:02:21Z"


def test_stored_json_that_is_broken_is_refused() -> None:
    with pytest.raises(PayloadFieldsMissingError):
        ServerTokenCredentials.from_json("{")
    with pytest.raises(PayloadFieldsMissingError, match="is missing access_secret"):
        ServerTokenCredentials.from_json(json.dumps({**valid_fields(), "access_secret": None}))
    with pytest.raises(BadExpiryError, match="'1768647741'"):
        ServerTokenCredentials.from_json(
            json.dumps({**valid_fields(), "access_token_expiry": 1768647741})
        )


def test_server_token_counts_days_left_and_knows_when_it_expired() -> None:
    token = ServerTokenCredentials(**CREDENTIALS, access_token_expiry=EXPIRY)

    assert token.days_left(now=EXPIRY - timedelta(days=30, hours=1)) == 30
    assert token.days_left(now=EXPIRY - timedelta(hours=1)) == 0
    assert token.days_left(now=EXPIRY + timedelta(days=2)) == -2
    assert not token.is_expired(now=EXPIRY - timedelta(seconds=1))
    assert token.is_expired(now=EXPIRY)


def test_expired_real_token_still_decrypts_but_is_not_usable(real_token_file: bytes) -> None:
    token = real_token_decrypt(real_token_file)
    server_token_check_usable(token, now=datetime(2025, 6, 1, tzinfo=UTC))

    with pytest.raises(TokenExpiredError) as caught:
        server_token_check_usable(token, now=datetime(2026, 2, 1, tzinfo=UTC))

    assert "expired on 17 Jan 2026" in str(caught.value)
    assert "download a new token" in str(caught.value)
    assert token.consumer_secret not in str(caught.value)


def test_empty_file_is_refused(key_pair: KeyPair) -> None:
    assert "empty" in raised(NotAServerTokenError, b"", key_pair)
    assert "empty" in raised(NotAServerTokenError, b" \r\n\n", key_pair)


def test_one_byte_file_is_refused(key_pair: KeyPair) -> None:
    message = raised(NotAServerTokenError, b"0", key_pair)

    assert message.startswith("This file is not an Apple server token (.p7m).")
    assert "Download Token" in message


def test_ten_megabytes_of_noise_are_refused(key_pair: KeyPair) -> None:
    noise = random.Random(7).randbytes(10 * 1024 * 1024)

    assert "not an Apple server token" in raised(NotAServerTokenError, noise, key_pair)


def test_noise_that_starts_like_der_is_refused(key_pair: KeyPair) -> None:
    noise = b"\x30\x82\x01\x00" + random.Random(8).randbytes(256)

    assert "not an Apple server token" in raised(NotAServerTokenError, noise, key_pair)


def test_truncated_token_is_damaged(key_pair: KeyPair) -> None:
    p7m = issue(key_pair)
    lines = p7m.splitlines(keepends=True)

    assert "download it again" in raised(DamagedTokenError, b"".join(lines[:12]), key_pair)
    assert "download it again" in raised(DamagedTokenError, p7m[:-300], key_pair)


def test_token_with_broken_base64_is_damaged(key_pair: KeyPair) -> None:
    p7m = bytearray(issue(key_pair))
    p7m[400] = ord("*")

    assert "base64" in raised(DamagedTokenError, bytes(p7m), key_pair)


def test_headers_with_no_body_are_damaged(key_pair: KeyPair) -> None:
    assert "no content" in raised(DamagedTokenError, APPLE_HEADERS, key_pair)


def test_token_with_corrupted_ciphertext_is_damaged(key_pair: KeyPair) -> None:
    ber = bytearray(p7m_body(issue(key_pair)))
    # The ciphertext ends before five end-of-contents pairs (10 bytes). Flipping the last byte of
    # the second-to-last block flips the last padding byte, so unpadding always fails.
    ber[-10 - 16 - 1] ^= 0xFF

    assert "download it again" in raised(DamagedTokenError, bytes(ber), key_pair).lower()


def test_signed_cms_is_not_a_server_token(key_pair: KeyPair) -> None:
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(b"hello")
        .add_signer(
            x509.load_pem_x509_certificate(key_pair.certificate_pem),
            serialization.load_pem_private_key(key_pair.private_key_pem, password=None),
            hashes.SHA256(),
        )
        .sign(serialization.Encoding.DER, [])
    )
    p7m = APPLE_HEADERS + base64.encodebytes(signed)

    assert "signed, not encrypted" in raised(NotAServerTokenError, p7m, key_pair)


def test_token_for_another_public_key_is_refused(
    key_pair: KeyPair, other_key_pair: KeyPair
) -> None:
    message = raised(WrongRecipientError, issue(other_key_pair), key_pair)

    assert message == (
        "This server token was encrypted for a different public key. Upload this account's "
        "public key to the MDM server in Apple Business Manager, then download a new token and "
        "upload it here."
    )


def test_token_for_several_other_public_keys_is_refused(
    key_pair: KeyPair, other_key_pair: KeyPair, third_key_pair: KeyPair
) -> None:
    p7m = issue(
        key_pair,
        omit_recipient=True,
        extra_recipients=[other_key_pair.certificate_pem, third_key_pair.certificate_pem],
    )

    assert "different public key" in raised(WrongRecipientError, p7m, key_pair)


def test_real_token_is_refused_for_a_generated_key_pair(
    key_pair: KeyPair, real_token_file: bytes
) -> None:
    assert "different public key" in raised(WrongRecipientError, real_token_file, key_pair)


@pytest.mark.parametrize(
    ("options", "algorithm_named"),
    [
        ({"content_cipher": "des-ede3-cbc"}, "3DES"),
        ({"content_cipher": "aes-192-cbc"}, "AES-192-CBC"),
        ({"key_transport": "rsa-oaep"}, "RSA-OAEP"),
    ],
)
def test_token_in_an_algorithm_apple_never_uses_is_refused(
    key_pair: KeyPair, options: dict[str, str], algorithm_named: str
) -> None:
    message = raised(UnsupportedCipherError, issue(key_pair, **options), key_pair)

    assert f"encrypted with {algorithm_named}" in message
    assert "AES-128-CBC" in message


def test_payload_without_message_markers_is_refused(key_pair: KeyPair) -> None:
    plaintext = PAYLOAD_MIME_HEADERS + json.dumps(valid_fields()).encode() + b"\n"

    message = raised(PayloadFieldsMissingError, envelope(plaintext, key_pair), key_pair)

    assert "BEGIN MESSAGE" in message


def test_payload_that_is_not_json_is_refused(key_pair: KeyPair) -> None:
    plaintext = b"-----BEGIN MESSAGE-----\n{not json\n-----END MESSAGE-----\n"

    assert "not valid JSON" in raised(
        PayloadFieldsMissingError, envelope(plaintext, key_pair), key_pair
    )


def test_payload_of_json_nested_40000_deep_is_refused_not_a_crash(key_pair: KeyPair) -> None:
    plaintext = b"-----BEGIN MESSAGE-----\n" + b"[" * 40_000 + b"\n-----END MESSAGE-----\n"

    message = raised(PayloadFieldsMissingError, envelope(plaintext, key_pair), key_pair)

    assert "nested too deeply" in message
    with pytest.raises(PayloadFieldsMissingError, match="nested too deeply"):
        ServerTokenCredentials.from_json("[" * 40_000)


def test_base64_of_json_nested_40000_deep_is_not_a_server_token(key_pair: KeyPair) -> None:
    data = base64.encodebytes(b"[" * 40_000)

    assert "not an Apple server token" in raised(NotAServerTokenError, data, key_pair)


def test_payload_with_json_wrapped_over_lines_decrypts(key_pair: KeyPair) -> None:
    message = json.dumps(valid_fields(), separators=(",", ":"))
    wrapped = "\n".join(message[i : i + 80] for i in range(0, len(message), 80)).encode()
    plaintext = b"-----BEGIN MESSAGE-----\n" + wrapped + b"\n-----END MESSAGE-----\n"

    assert decrypt(envelope(plaintext, key_pair), key_pair).access_token_expiry == EXPIRY


@pytest.mark.parametrize(
    "missing_field",
    ["consumer_key", "consumer_secret", "access_token", "access_secret", "access_token_expiry"],
)
def test_payload_missing_a_field_names_it(key_pair: KeyPair, missing_field: str) -> None:
    fields = valid_fields()
    del fields[missing_field]

    message = raised(PayloadFieldsMissingError, envelope(payload(fields), key_pair), key_pair)

    assert f"is missing {missing_field}." in message


def test_payload_with_bad_expiry_shows_what_was_found(key_pair: KeyPair) -> None:
    fields = {**valid_fields(), "access_token_expiry": "17/01/2026 11:02"}

    message = raised(BadExpiryError, envelope(payload(fields), key_pair), key_pair)

    assert "'17/01/2026 11:02'" in message
    assert "2026-01-17T11:02:21Z" in message


def test_payload_with_long_bad_expiry_is_shown_truncated(key_pair: KeyPair) -> None:
    fields = {**valid_fields(), "access_token_expiry": "2026-01-17T11:02:21+00:00" + "x" * 500}

    message = raised(BadExpiryError, envelope(payload(fields), key_pair), key_pair)

    assert "2026-01-17T11:02:21+00:00xxx" in message
    assert "x" * 100 not in message


def test_apps_and_books_vpp_token_is_recognised(key_pair: KeyPair) -> None:
    vpp_token = base64.b64encode(
        json.dumps(
            {"token": "dGVzdA==", "expDate": "2026-01-17T11:02:21+0000", "orgName": "Example"}
        ).encode()
    )

    assert ".vpptoken" in raised(NotAServerTokenError, vpp_token, key_pair)


def apns_like_certificate(key_pair: KeyPair) -> x509.Certificate:
    private_key = serialization.load_pem_private_key(key_pair.private_key_pem, password=None)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, "com.apple.mgmt.External.0f8e2b3c"),
            x509.NameAttribute(NameOID.COMMON_NAME, "APSP:0f8e2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ISSUED_AT)
        .not_valid_after(EXPIRY)
        .sign(private_key, hashes.SHA256())
    )


def test_apns_certificate_pem_is_recognised(key_pair: KeyPair) -> None:
    pem = apns_like_certificate(key_pair).public_bytes(serialization.Encoding.PEM)

    assert "X.509 certificate" in raised(NotAServerTokenError, pem, key_pair)


def test_certificate_der_is_recognised(key_pair: KeyPair) -> None:
    der = apns_like_certificate(key_pair).public_bytes(serialization.Encoding.DER)

    assert "X.509 certificate" in raised(NotAServerTokenError, der, key_pair)


def test_private_key_pem_is_recognised(key_pair: KeyPair) -> None:
    real_key = (REAL_TOKEN_DIR / "private-key.pem").read_bytes()

    assert "private key" in raised(NotAServerTokenError, key_pair.private_key_pem, key_pair)
    assert "private key" in raised(NotAServerTokenError, real_key, key_pair)


def test_html_page_is_recognised(key_pair: KeyPair) -> None:
    page = b"\n<!DOCTYPE html>\n<html lang='en'><head><title>Apple Business Manager</title>"

    assert "web page (HTML)" in raised(NotAServerTokenError, page, key_pair)


def test_zip_archive_is_recognised(key_pair: KeyPair) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("server-token.p7m", issue(key_pair))

    assert "ZIP archive" in raised(NotAServerTokenError, archive.getvalue(), key_pair)


def test_pdf_is_recognised(key_pair: KeyPair) -> None:
    assert "PDF" in raised(NotAServerTokenError, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", key_pair)


def test_every_truncation_or_bit_flip_raises_only_server_token_errors(
    key_pair: KeyPair,
) -> None:
    ber = p7m_body(issue(key_pair))
    candidates = [ber[:length] for length in range(0, len(ber), 7)]
    for position in range(0, len(ber), 5):
        flipped = bytearray(ber)
        flipped[position] ^= 0x5A
        candidates.append(bytes(flipped))

    for candidate in candidates:
        try:
            decrypt(candidate, key_pair)
        except ServerTokenError as error:
            assert "\n" not in error.message
