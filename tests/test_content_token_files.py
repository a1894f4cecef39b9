"""Bad .vpptoken files through every content token entry point (Add and Edit Content Token,
the API, `manage.py content_token upload`), each refused with its own words and nothing changed;
and the rest of `manage.py content_token` (list, show, inspect)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from dep_accounts.apple.apns import push_key_generate
from dep_accounts.apple.keypair import key_pair_generate
from dep_accounts.models import AuditEvent, ContentToken, ContentTokenUpload
from dep_accounts.services.api_tokens import api_token_create
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.intake import TokenFile

pytestmark = pytest.mark.django_db


def _vpptoken(fields: object) -> bytes:
    return base64.b64encode(json.dumps(fields).encode())


def _zip_of(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sToken_for_Springfield_High.vpptoken", content)
    return buffer.getvalue()


# Each: what the file is, how it is made from a good download, and what the admin reads.
CORPUS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty", lambda good: b"", "This file is empty"),
    ("too large", lambda good: b"A" * (16 * 1024 + 1), "a content token is a few hundred"),
    ("truncated", lambda good: good[: len(good) // 2], "download the content token of the"),
    ("not base64", lambda good: b"%%%" + good, "not an Apps and Books content token"),
    (
        "base64 of text",
        lambda good: base64.b64encode(b"hello, this is not json"),
        "not an Apps and Books content token",
    ),
    (
        "missing expDate",
        lambda good: _vpptoken({"token": "x" * 40, "orgName": "Springfield"}),
        "is missing expDate",
    ),
    (
        "expDate without offset",
        lambda good: _vpptoken(
            {"token": "x" * 40, "expDate": "2031-01-01T00:00:00", "orgName": "S"}
        ),
        "not a date like",
    ),
    (
        "expired",
        lambda good: _vpptoken(
            {"token": "x" * 40, "expDate": "2020-01-01T00:00:00+0000", "orgName": "S"}
        ),
        "expired on 1 Jan 2020",
    ),
    (
        "nested deep",
        lambda good: base64.b64encode(b'{"token": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
        "nested too deeply",
    ),
    ("zip of a good token", _zip_of, "ZIP archive"),
    (
        "a certificate",
        lambda good: key_pair_generate(common_name="x").certificate_pem,
        "X.509 certificate",
    ),
    (
        "a private key",
        lambda good: push_key_generate(organisation="Springfield").private_key_pem,
        "Never upload private keys",
    ),
    ("an HTML page", lambda good: b"<!doctype html><html>ABM</html>", "document or web page"),
    (
        "unknown to Apple",
        lambda good: _vpptoken(
            {"token": "x" * 40, "expDate": "2031-01-01T00:00:00+0000", "orgName": "S"}
        ),
        "Apple does not accept this content token",
    ),
]


def _console(content_token: ContentToken, admin, content: bytes) -> str:
    client = Client()
    client.force_login(admin)
    url = reverse("dep_accounts:content_token_edit", args=[content_token.pk])
    upload = SimpleUploadedFile("sToken.vpptoken", content)
    return client.post(url, {"token_file": upload}).content.decode()


def _console_add(content_token: ContentToken, admin, content: bytes) -> str:
    client = Client()
    client.force_login(admin)
    upload = SimpleUploadedFile("sToken.vpptoken", content)
    return client.post(
        reverse("dep_accounts:content_token_add"), {"token_file": upload}
    ).content.decode()


def _api(content_token: ContentToken, admin, content: bytes) -> str:
    key = api_token_create(user=admin, name="corpus").key
    response = Client().post(
        reverse("api:content_token_token", args=[content_token.pk]),
        {"token_file": SimpleUploadedFile("sToken.vpptoken", content)},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code in (413, 422)
    return response.json()["error"]


def _command(content_token: ContentToken, admin, content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "sToken.vpptoken"
    path.write_bytes(content)
    with pytest.raises(CommandError) as refused:
        call_command("content_token", "upload", str(path), "--renew", str(content_token.pk))
    return str(refused.value)


ENTRY_POINTS = {"console edit": _console, "console add": _console_add, "API": _api}


@pytest.mark.parametrize(("kind", "make", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_every_bad_file_is_refused_at_every_entry_point_and_nothing_changes(
    apps_books, content_token, admin, tmp_path, kind, make, expected
):
    content = make(apps_books.token())
    before = (list(ContentToken.objects.values()), ContentTokenUpload.objects.count())
    answers = {name: call(content_token, admin, content) for name, call in ENTRY_POINTS.items()}
    answers["command"] = _command(content_token, admin, content, tmp_path)

    for entry_point, answer in answers.items():
        assert expected in answer.replace("&#x27;", "'"), (entry_point, answer[:300])
    assert (list(ContentToken.objects.values()), ContentTokenUpload.objects.count()) == before
    rejected = AuditEvent.objects.filter(action=AuditEvent.Action.CONTENT_TOKEN_REJECTED)
    assert rejected.count() == len(answers)


def test_the_command_adds_renews_lists_and_shows(apps_books, admin, tmp_path):
    path = tmp_path / "sToken_for_Springfield_High.vpptoken"
    path.write_bytes(apps_books.token(validity_days=200))
    out = StringIO()
    call_command(
        "content_token", "upload", str(path), "--apple-id", "vpp@x.example", "--user",
        "alex.admin", stdout=out,
    )  # fmt: skip
    content_token = ContentToken.objects.get()
    assert f"Content token {content_token.pk} of “Springfield High” taken" in out.getvalue()
    assert AuditEvent.objects.get(action="content_token_added").actor == admin

    path.write_bytes(apps_books.token(validity_days=300))
    call_command("content_token", "upload", str(path), "--renew", str(content_token.pk))
    assert content_token.uploads.count() == 2

    listed = StringIO()
    call_command("content_token", "list", "--json", stdout=listed)
    assert [t["location_name"] for t in json.loads(listed.getvalue())] == ["Springfield High"]
    shown = StringIO()
    call_command("content_token", "show", str(content_token.pk), stdout=shown)
    assert "country: GB" in shown.getvalue() and "apple_id: vpp@x.example" in shown.getvalue()


def test_inspect_prints_metadata_and_never_the_token(apps_books, tmp_path):
    content = apps_books.token(validity_days=100)
    path = tmp_path / "sToken.vpptoken"
    path.write_bytes(content)
    out = StringIO()
    call_command("content_token", "inspect", str(path), stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["org_name"] == "Springfield Schools" and printed["days_left"] in (99, 100)
    assert printed["fingerprint"].startswith("SHA256:") and not printed["expired"]
    inner = json.loads(base64.b64decode(content))["token"]
    assert content.decode() not in out.getvalue() and inner not in out.getvalue()


def test_inspect_names_the_wrong_kind_of_file(tmp_path):
    path = tmp_path / "cert.pem"
    path.write_bytes(key_pair_generate(common_name="x").certificate_pem)
    with pytest.raises(CommandError, match="not an Apps and Books content token"):
        call_command("content_token", "inspect", str(path))


def test_bulk_renewal_matches_each_file_to_its_location(apps_books, content_token, tmp_path):
    other_uid = apps_books.location_add("Shelbyville Elementary")
    other = content_token_intake(
        content_token=None,
        upload=TokenFile("b.vpptoken", apps_books.token(uid=other_uid, validity_days=100)),
        actor=None,
    )
    unknown_uid = apps_books.location_add("Ogdenville Middle")
    # ABM's names say nothing reliable: the files are named the other way round.
    files = {
        "sToken_for_Springfield_High.vpptoken": apps_books.token(uid=other_uid),
        "sToken_for_Shelbyville_Elementary.vpptoken": apps_books.token(),
        "sToken_for_Ogdenville_Middle.vpptoken": apps_books.token(uid=unknown_uid),
        "notes.txt": b"not a token",
    }
    paths = []
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths.append(str(tmp_path / name))
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="2 of 4 files were not renewed"):
        call_command("content_token", "bulk-renew", *paths, stdout=out, stderr=err)

    assert "renewed “Shelbyville Elementary”" in out.getvalue()
    assert "renewed “Springfield High”" in out.getvalue()
    assert "No content token here is for the location “Ogdenville Middle”" in err.getvalue()
    assert "notes.txt: not renewed." in err.getvalue()
    for renewed in (content_token, other):
        renewed.refresh_from_db()
        assert renewed.days_left() >= 364
    assert AuditEvent.objects.filter(action="content_token_rejected").count() == 2
