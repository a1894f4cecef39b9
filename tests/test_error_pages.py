"""Even Django's debug 500 page hides a private key, a decrypted server token's secrets and an
API key: the functions that hold them are marked @sensitive_variables, and the portal's
reporter filter hides them whatever DEBUG says."""

from __future__ import annotations

import json
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from dep_accounts.apple.client import DEPClient
from dep_accounts.apple.envelope import server_token_decrypt
from dep_accounts.apple.keypair import key_pair_generate
from dep_accounts.apple.token import ServerTokenCredentials
from dep_accounts.services.api_tokens import api_token_authenticate

SECRETS = {
    "consumer_key": "CK_5e1ec7ed0c0ffee0c0ffee",
    "consumer_secret": "CS_d0n7-5h0w-7h15-5ecre7",
    "access_token": "AT_4cce55-70ken-hidden",
    "access_secret": "AS_4cce55-5ecre7-hidden",
}

API_KEY = "mdmp_k3y-7h47-mu57-n07-b3-5h0wn-xxxxxxxxxxxxx"


def _technical_500(settings) -> str:
    """The debug page Django renders for the exception being handled."""
    settings.DEBUG = True
    request = RequestFactory().post("/admin/apple-dep/dep-accounts/1/edit/")
    return ExceptionReporter(request, *sys.exc_info()).get_traceback_html()


def _key_body(pem: bytes) -> list[str]:
    return [line for line in pem.decode().splitlines() if not line.startswith("-----")]


def test_a_crash_while_decrypting_a_token_does_not_show_the_private_key(settings):
    key_pair = key_pair_generate(common_name="mdmportal test")
    try:
        server_token_decrypt(
            b"not a server token at all",
            private_key_pem=key_pair.private_key_pem,
            certificate_pem=key_pair.certificate_pem,
        )
    except Exception:
        page = _technical_500(settings)
    else:
        pytest.fail("a file that is not a token decrypted")
    assert "server_token_decrypt" in page
    assert "PRIVATE KEY" not in page
    assert not any(line in page for line in _key_body(key_pair.private_key_pem))


def _decrypted_payload() -> str:
    return json.dumps({**SECRETS, "access_token_expiry": "next tuesday"})


def test_a_crash_while_reading_a_decrypted_token_does_not_show_its_secrets(settings):
    # Built in a call that has returned: only the portal's frames hold it when it fails.
    try:
        ServerTokenCredentials.from_json(_decrypted_payload())
    except Exception:
        page = _technical_500(settings)
    else:
        pytest.fail("a token with a bad expiry was read")
    assert "_server_token_from_fields" in page
    for secret in SECRETS.values():
        assert secret not in page


def test_a_crash_while_building_the_apple_client_does_not_show_the_oauth_secrets(settings):
    try:
        DEPClient(**SECRETS, base_url=None)
    except Exception:
        page = _technical_500(settings)
    else:
        pytest.fail("a client without a base URL was built")
    assert "DEPClient" in page or "__init__" in page
    for secret in SECRETS.values():
        assert secret not in page


def test_a_crash_while_checking_an_api_key_does_not_show_the_key(settings, monkeypatch):
    from dep_accounts.services import api_tokens

    def broken_hash(key: str) -> str:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(api_tokens, "_key_hash", broken_hash)
    try:
        api_token_authenticate(key=API_KEY)
    except RuntimeError:
        page = _technical_500(settings)
    assert "api_token_authenticate" in page
    assert API_KEY not in page
