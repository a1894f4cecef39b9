"""Fuzzing the server token parser: random and mutated .p7m files, base64, ASN.1/BER and the
JSON payload. Whatever the bytes, the parser answers credentials or a ServerTokenError."""

from __future__ import annotations

import base64
import functools
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from applesim.tokens import server_token_credentials_new, server_token_issue
from dep_accounts.apple.envelope import server_token_decrypt, server_token_recipients
from dep_accounts.apple.keypair import KeyPair, key_pair_generate
from dep_accounts.apple.token import (
    ServerTokenCredentials,
    ServerTokenError,
    server_token_from_plaintext,
)
from tests.fuzzing import bounded, json_values, mutated
from tests.token_corpus import p7m_encrypted, payload, payload_fields

# The DER of ContentInfo's start: SEQUENCE (indefinite), contentType enveloped-data, [0].
ENVELOPED_DATA_START = bytes.fromhex("308006092a864886f70d010703a080")


@functools.cache
def _key_pair() -> KeyPair:
    return key_pair_generate(common_name="mdmportal fuzzing")


@functools.cache
def _token() -> bytes:
    """A good server token as ABM wraps it: S/MIME headers around base64 of a BER CMS."""
    now = datetime.now(UTC)
    return server_token_issue(
        certificate=_key_pair().certificate_pem,
        access_token_expiry=now + timedelta(days=365),
        **server_token_credentials_new(issued_at=now),
    )


@functools.cache
def _token_der() -> bytes:
    return base64.b64decode(_token().split(b"\n\n", 1)[1])


def _decrypt(data: bytes) -> ServerTokenCredentials | None:
    key_pair = _key_pair()
    return bounded(
        lambda: server_token_decrypt(
            data,
            private_key_pem=key_pair.private_key_pem,
            certificate_pem=key_pair.certificate_pem,
        ),
        expected=(ServerTokenError,),
    )


def _wrapped(der: bytes, form: str) -> bytes:
    encoded = base64.encodebytes(der)
    return {
        "der": der,
        "smime": _token().split(b"\n\n", 1)[0] + b"\n\n" + encoded,
        "pem": b"-----BEGIN PKCS7-----\n" + encoded + b"-----END PKCS7-----\n",
        "base64": encoded,
    }[form]


FORMS = st.sampled_from(["der", "smime", "pem", "base64"])


def test_the_token_used_for_fuzzing_decrypts():
    assert _decrypt(_token()) is not None


@given(st.binary(max_size=4096))
def test_random_bytes_get_a_server_token_error(data):
    assert _decrypt(data) is None


@given(st.data())
def test_a_mutated_p7m_file_gets_credentials_or_a_server_token_error(data):
    _decrypt(data.draw(mutated(_token())))


@given(st.data(), FORMS)
def test_mutated_asn1_in_every_wrapping_gets_credentials_or_a_server_token_error(data, form):
    _decrypt(_wrapped(data.draw(mutated(_token_der())), form))


def _tlv(tag: int, content: bytes, *, indefinite: bool) -> bytes:
    if indefinite:
        return bytes([tag | 0x20]) + b"\x80" + content + b"\x00\x00"
    size = len(content)
    length = bytes([size]) if size < 128 else b"\x82" + size.to_bytes(2, "big")
    return bytes([tag]) + length + content


ber_values = st.recursive(
    st.builds(
        _tlv,
        st.sampled_from([0x02, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x17, 0x80, 0x81, 0xA0]),
        st.binary(max_size=24),
        indefinite=st.just(False),
    ),
    lambda children: st.builds(
        _tlv,
        st.sampled_from([0x30, 0x31, 0xA0, 0xA1, 0xA2, 0x24]),
        st.lists(children, max_size=5).map(b"".join),
        indefinite=st.booleans(),
    ),
    max_leaves=40,
)


@given(ber_values, FORMS)
def test_random_ber_inside_an_enveloped_data_gets_a_server_token_error(ber, form):
    der = ENVELOPED_DATA_START + ber + b"\x00\x00\x00\x00"
    assert _decrypt(_wrapped(der, form)) is None
    bounded(lambda: server_token_recipients(_wrapped(der, form)), expected=(ServerTokenError,))


@given(st.data())
def test_recipients_of_a_mutated_p7m_are_a_list_or_a_server_token_error(data):
    bounded(
        lambda: server_token_recipients(data.draw(mutated(_token()))),
        expected=(ServerTokenError,),
    )


def _good_fields() -> dict[str, str]:
    return payload_fields()


@given(st.dictionaries(st.sampled_from(list(_good_fields())), json_values), st.booleans())
def test_a_payload_with_any_json_in_its_fields_gets_a_server_token_error(changes, whole):
    fields = changes if whole else _good_fields() | changes
    bounded(lambda: server_token_from_plaintext(payload(fields)), expected=(ServerTokenError,))


@given(json_values)
def test_any_json_document_as_payload_gets_a_server_token_error(document):
    text = json.dumps(document).encode()
    plaintext = b"-----BEGIN MESSAGE-----\n" + text + b"\n-----END MESSAGE-----\n"
    assert (
        bounded(lambda: server_token_from_plaintext(plaintext), expected=(ServerTokenError,))
        is None
    )


@given(st.data())
def test_a_mutated_payload_gets_credentials_or_a_server_token_error(data):
    plaintext = data.draw(mutated(payload(_good_fields())))
    bounded(lambda: server_token_from_plaintext(plaintext), expected=(ServerTokenError,))


@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":', '{"consumer_key":[']))
def test_json_nested_at_any_depth_gets_a_server_token_error(depth, opener):
    plaintext = (
        b"-----BEGIN MESSAGE-----\n" + opener.encode() * depth + b"\n-----END MESSAGE-----\n"
    )
    assert (
        bounded(lambda: server_token_from_plaintext(plaintext), expected=(ServerTokenError,))
        is None
    )
    assert (
        bounded(
            lambda: ServerTokenCredentials.from_json(opener * depth), expected=(ServerTokenError,)
        )
        is None
    )


@given(st.data())
def test_an_encrypted_mutated_payload_gets_credentials_or_a_server_token_error(data):
    plaintext = data.draw(mutated(payload(_good_fields())))
    _decrypt(p7m_encrypted(plaintext, certificate_pem=_key_pair().certificate_pem))


@given(st.text(max_size=2000))
def test_stored_credentials_json_reads_or_gets_a_server_token_error(text):
    bounded(lambda: ServerTokenCredentials.from_json(text), expected=(ServerTokenError,))
