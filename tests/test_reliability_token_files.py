"""Every file of the bad token corpus, uploaded through the real Edit and Add DEP Account forms.

For each file: no server error, a message that says what to do, an audit event, and the account
with its current token exactly as it was, encrypted secrets' bytes included. The corpus itself is
in tests/token_corpus.py. Files go up as a browser sends them, in a multipart body built here,
because Django's test client would shorten the file names this corpus is about.
"""

from __future__ import annotations

import html
import re

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.urls import reverse

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.services import intake
from dep_accounts.services.accounts import account_create
from tests.edit_page import account_snapshot, edit_form, edit_url
from tests.token_corpus import CORPUS, TEN_MEGABYTES, CorpusFile, TokenTarget

pytestmark = pytest.mark.django_db

BOUNDARY = "mdmportal-token-corpus-boundary"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _multipart(fields: dict[str, object], *, file_name: str, content: bytes) -> bytes:
    """A form POST body as a browser writes it: the file name escaped only as HTML requires."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    quoted = file_name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="token_file"; '
        f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def _upload(client, url: str, fields: dict[str, object], case: CorpusFile, content: bytes):
    body = _multipart(fields, file_name=case.file_name, content=content)
    return client.post(url, body, content_type=f"multipart/form-data; boundary={BOUNDARY}")


def _page_text(response) -> str:
    return html.unescape(response.content.decode())


def _stored_name(case: CorpusFile) -> str:
    return case.stored_name or case.file_name


def _uploads_never_read(monkeypatch) -> list[UploadedFile]:
    """Make reading any upload fail; return the uploads the form's size check was given."""

    def refuse(upload: UploadedFile, *args: object, **kwargs: object):
        raise AssertionError(f"the {upload.size}-byte upload was read")

    for method in ("read", "readline", "readlines", "chunks", "__iter__"):
        monkeypatch.setattr(UploadedFile, method, refuse)
    checked: list[UploadedFile] = []
    size_check = intake.token_read

    def size_check_recorded(upload: UploadedFile) -> bytes:
        checked.append(upload)
        return size_check(upload)

    monkeypatch.setattr(intake, "token_read", size_check_recorded)
    return checked


def _assert_refusal_audited(account: DEPAccount, admin, *, reason: str) -> AuditEvent:
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REJECTED)
    assert (event.outcome, event.account_id, event.actor) == (
        AuditEvent.Outcome.FAILURE,
        account.pk,
        admin,
    )
    assert event.details["reason"] == reason
    return event


def _assert_oversized_upload_spooled_and_unread(checked: list[UploadedFile]) -> None:
    (upload,) = checked
    assert isinstance(upload, TemporaryUploadedFile)
    assert upload.size == TEN_MEGABYTES


def test_the_corpus_has_at_least_30_distinct_files() -> None:
    names = [case.name for case in CORPUS]
    assert len(names) >= 30
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_edit_dep_account_answers_each_corpus_file_safely(
    case: CorpusFile, client_as, admin, abm, dep_account, monkeypatch
):
    target = TokenTarget.renewal(abm, dep_account)
    content = case.build(target)
    checked = _uploads_never_read(monkeypatch) if case.oversized else []
    before = account_snapshot(dep_account)

    response = _upload(
        client_as(admin),
        edit_url(dep_account),
        edit_form(dep_account, display_name="Renamed with the upload"),
        case,
        content,
    )

    if case.accepted:
        assert response.status_code == 302
        current = dep_account.server_tokens.get(is_current=True)
        assert current.file_name == case.stored_name
        renewed = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_RENEWED)
        assert renewed.details["file_name"] == case.stored_name
        return
    assert response.status_code == 200
    assert case.says in _page_text(response)
    assert case.says in " ".join(response.context["form"].errors["token_file"])
    event = _assert_refusal_audited(dep_account, admin, reason=case.reason)
    assert event.details["file_name"] == _stored_name(case)
    assert not CONTROL_CHARACTERS.search(event.details["file_name"])
    assert account_snapshot(dep_account) == before
    if case.oversized:
        _assert_oversized_upload_spooled_and_unread(checked)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_add_dep_account_answers_each_corpus_file_safely(
    case: CorpusFile, client_as, admin, abm, dep_account, monkeypatch
):
    account = account_create(actor=admin)
    target = TokenTarget.first_token(abm, account)
    content = case.build(target)
    checked = _uploads_never_read(monkeypatch) if case.oversized else []
    before = account_snapshot(account), account_snapshot(dep_account)
    client = client_as(admin)
    confirm_url = reverse("dep_accounts:add_confirm", args=[account.pk])

    response = _upload(
        client, reverse("dep_accounts:add_token", args=[account.pk]), {}, case, content
    )

    assert response.status_code == 200
    page = _page_text(response)
    if case.accepted:
        assert confirm_url in page
        assert client.post(confirm_url).status_code == 302
        assert account.server_tokens.get(is_current=True).file_name == case.stored_name
        return
    if case.add_previews:
        # Nothing is stored before the admin confirms what the preview shows.
        assert case.add_says in page and confirm_url in page
        assert (account_snapshot(account), account_snapshot(dep_account)) == before
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REJECTED).exists()
        return
    assert (case.add_says or case.says) in page
    assert confirm_url not in page
    _assert_refusal_audited(account, admin, reason=case.add_reason or case.reason)
    assert (account_snapshot(account), account_snapshot(dep_account)) == before
    assert f"dep_accounts.staged_token.{account.pk}" not in client.session
    if case.oversized:
        _assert_oversized_upload_spooled_and_unread(checked)


def test_an_empty_upload_says_to_download_the_token_again(client_as, admin, dep_account):
    empty = next(case for case in CORPUS if case.name == "empty")
    response = _upload(client_as(admin), edit_url(dep_account), edit_form(dep_account), empty, b"")
    assert "Download Token" in " ".join(response.context["form"].errors["token_file"])
