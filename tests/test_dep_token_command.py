"""`manage.py dep_token inspect`: JSON metadata, never a secret; the form's message on bad files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from applesim.tokens import server_token_credentials_new, server_token_issue
from dep_accounts.apple.keypair import key_pair_generate

REAL = Path(__file__).resolve().parent / "fixtures" / "apple-real-token"


def _inspect(*args: str) -> tuple[dict, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("dep_token", "inspect", *args, stdout=out)
    except CommandError as exc:
        return json.loads(out.getvalue() or "{}"), str(exc)
    return json.loads(out.getvalue()), ""


def test_inspect_prints_the_real_tokens_metadata_from_the_private_key_alone():
    metadata, error = _inspect(
        str(REAL / "server-token.p7m"), "--private-key", str(REAL / "private-key.pem")
    )

    assert metadata["access_token_expiry"] == "2026-01-17T11:02:21Z"
    assert metadata["consumer_key_fingerprint"].startswith("SHA256:")
    assert metadata["expired"] is True
    assert "expired on" in error
    printed = json.dumps(metadata)
    assert "CK_" not in printed and "AT_" not in printed and "AS_" not in printed


def test_inspect_reads_a_fresh_token_with_its_certificate(tmp_path):
    key_pair = key_pair_generate(common_name="cli-test")
    issued = datetime.now(UTC)
    credentials = server_token_credentials_new(issued_at=issued)
    token = server_token_issue(
        certificate=key_pair.certificate_pem,
        access_token_expiry=issued + timedelta(days=365),
        **credentials,
    )
    (tmp_path / "t.p7m").write_bytes(token)
    (tmp_path / "key.pem").write_bytes(key_pair.private_key_pem)
    (tmp_path / "cert.pem").write_bytes(key_pair.certificate_pem)

    for extra in ([], ["--certificate", str(tmp_path / "cert.pem")]):
        metadata, error = _inspect(
            str(tmp_path / "t.p7m"), "--private-key", str(tmp_path / "key.pem"), *extra
        )
        assert error == ""
        assert metadata["days_left"] in (364, 365)
        assert credentials["consumer_secret"] not in json.dumps(metadata)


def test_inspect_with_another_private_key_says_the_key_does_not_fit(tmp_path):
    (tmp_path / "other.pem").write_bytes(key_pair_generate(common_name="other").private_key_pem)

    _, error = _inspect(
        str(REAL / "server-token.p7m"), "--private-key", str(tmp_path / "other.pem")
    )

    assert "not encrypted for this private key" in error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "This file is empty"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "a web page (HTML)"),
        (b"hello", "not an Apple server token"),
    ],
)
def test_inspect_a_bad_file_fails_with_the_forms_message(tmp_path, content, message):
    (tmp_path / "bad.p7m").write_bytes(content)

    _, error = _inspect(str(tmp_path / "bad.p7m"), "--private-key", str(REAL / "private-key.pem"))

    assert message in error
    assert "\n" not in error


def test_inspect_a_missing_file_says_so(tmp_path):
    _, error = _inspect(str(tmp_path / "nope.p7m"), "--private-key", str(REAL / "private-key.pem"))

    assert "Cannot read" in error
