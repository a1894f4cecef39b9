"""Every way a server token file arrives refuses the bad-file corpus alike.

Edit DEP Account, Add DEP Account, the API, `manage.py dep_account upload-token` and Bulk
renewal all go through `services.intake`, so each refused file gets the same refusal code and
the same message from each of them, and one audit event. Renewals are compared on an account
that has a token (Edit, API, CLI, Bulk); first tokens on an account that has none yet (Edit,
Add, API, CLI).
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.services.accounts import account_create
from dep_accounts.services.api_tokens import api_token_create
from tests.token_corpus import CORPUS, CorpusFile, TokenTarget

pytestmark = pytest.mark.django_db

REFUSED = [case for case in CORPUS if not case.accepted]
# Bulk renewal matches a file to an account by the public key it is encrypted for, before
# anything else: a file for nobody's key is refused for that, not for what else is wrong.
NO_ACCOUNT_IN_BULK = {"encrypted_for_another_certificate", "several_recipients_none_ours"}
# Bulk renewal takes these as renewals of their own kind, through their own intake
# (tests/test_bulk_renewal_kinds.py), not as a wrong server token.
OWN_KIND_IN_BULK = {"vpp_token", "apns_certificate"}


def _last_refusal() -> tuple[str, str]:
    """The code and message of the one refusal the upload left in the audit log."""
    event = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REJECTED).latest("id")
    event.delete()
    return event.details["reason"], event.message.removeprefix("Token upload rejected: ")


def _upload(case: CorpusFile, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(case.file_name, content, content_type="application/pkcs7-mime")


def _by_edit(client, account: DEPAccount, case: CorpusFile, content: bytes) -> tuple[str, str]:
    form = {"sync_interval_minutes": account.sync_interval_minutes, "auto_sync": "on"}
    response = client.post(
        reverse("dep_accounts:edit", args=[account.pk]),
        {**form, "token_file": _upload(case, content)},
    )
    assert response.status_code == 200
    code = response.context["upload_error"].code
    assert _last_refusal() == (code, response.context["form"].errors["token_file"][0])
    return code, response.context["form"].errors["token_file"][0]


def _by_add(client, account: DEPAccount, case: CorpusFile, content: bytes) -> tuple[str, str]:
    response = client.post(
        reverse("dep_accounts:add_token", args=[account.pk]),
        {"token_file": _upload(case, content)},
    )
    assert response.status_code == 200
    code = response.context["upload_error"].code
    assert _last_refusal() == (code, response.context["form"].errors["token_file"][0])
    return code, response.context["form"].errors["token_file"][0]


def _by_api(client, key: str, account: DEPAccount, content: bytes) -> tuple[str, str]:
    response = client.post(
        reverse("api:dep_account_token", args=[account.pk]),
        content,
        content_type="application/pkcs7-mime",
        # Django's test client drops the type of an empty body; curl sends it.
        CONTENT_TYPE="application/pkcs7-mime",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code in (413, 422)
    refusal = response.json()
    assert _last_refusal() == (refusal["code"], refusal["error"])
    return refusal["code"], refusal["error"]


def _by_command(tmp_path: Path, account: DEPAccount, content: bytes) -> tuple[str, str]:
    token_file = tmp_path / "smime.p7m"
    token_file.write_bytes(content)
    with pytest.raises(CommandError) as refused:
        call_command(
            "dep_account", "upload-token", str(account.pk), str(token_file),
            stdout=StringIO(), stderr=StringIO(),
        )  # fmt: skip
    code, message = _last_refusal()
    assert str(refused.value) == f"{message} [{code}]"
    return code, message


def _by_bulk(client, case: CorpusFile, content: bytes) -> tuple[str, str]:
    response = client.post(
        reverse("dep_accounts:bulk_renew"), {"token_files": [_upload(case, content)]}
    )
    (row,) = response.context["rows"]
    if row.applies:
        # Flagged at the preview (a changed Apple ID): refused when confirmed without it.
        confirmed = client.post(reverse("dep_accounts:bulk_renew_confirm"), follow=True)
        shown = " ".join(str(m) for m in get_messages(confirmed.wsgi_request))
        code, message = _last_refusal()
        assert message in shown
        return code, message
    assert _last_refusal() == (row.reason, row.problem)
    return row.reason, row.problem


@pytest.mark.parametrize("case", REFUSED, ids=lambda case: case.name)
def test_edit_api_command_and_bulk_refuse_each_renewal_alike(
    case: CorpusFile, client_as, admin, abm, dep_account, tmp_path
):
    target = TokenTarget.renewal(abm, dep_account)
    content = case.build(target)
    client = client_as(admin)
    key = api_token_create(user=admin, name="renewal script").key

    answers = {
        "edit": _by_edit(client, dep_account, case, content),
        "api": _by_api(client, key, dep_account, content),
        "command": _by_command(tmp_path, dep_account, content),
    }
    if case.name not in NO_ACCOUNT_IN_BULK | OWN_KIND_IN_BULK:
        answers["bulk"] = _by_bulk(client, case, content)

    assert set(answers.values()) == {answers["edit"]}, answers
    assert answers["edit"][0] == case.reason
    assert case.says in answers["edit"][1]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REJECTED).exists()


@pytest.mark.parametrize(
    "case", [case for case in REFUSED if not case.add_previews], ids=lambda case: case.name
)
def test_edit_add_api_and_command_refuse_each_first_token_alike(
    case: CorpusFile, client_as, admin, abm, dep_account, tmp_path
):
    account = account_create(actor=admin)
    target = TokenTarget.first_token(abm, account)
    content = case.build(target)
    client = client_as(admin)
    key = api_token_create(user=admin, name="renewal script").key

    answers = {
        "edit": _by_edit(client, account, case, content),
        "add": _by_add(client, account, case, content),
        "api": _by_api(client, key, account, content),
        "command": _by_command(tmp_path, account, content),
    }

    assert set(answers.values()) == {answers["add"]}, answers
    assert answers["add"][0] == (case.add_reason or case.reason)
    assert (case.add_says or case.says) in answers["add"][1]
    account.refresh_from_db()
    assert account.state == DEPAccount.State.AWAITING_TOKEN and not account.server_tokens.exists()


def test_edit_of_an_account_without_a_token_refuses_a_server_already_added(
    client_as, admin, abm, dep_account
):
    """Issue 13 item 7: the Add flow's "already added" rule, not an IntegrityError."""
    account = account_create(actor=admin)
    response = client_as(admin).post(
        reverse("dep_accounts:edit", args=[account.pk]),
        {
            "sync_interval_minutes": 60,
            "token_file": _upload(CORPUS[0], abm.token_for(account, server_uuid=abm.server_uuid)),
        },
    )
    assert response.status_code == 200
    refusal = response.context["upload_error"]
    assert (refusal.code, refusal.existing) == ("wrong_server", dep_account)
    page = response.content.decode()
    assert "This MDM server is already added as “Springfield MDM”" in page
    assert reverse("dep_accounts:edit", args=[dep_account.pk]) in page
    account.refresh_from_db()
    assert (account.server_uuid, account.server_tokens.exists()) == (None, False)
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REJECTED)
    assert (event.account, event.details["reason"]) == (account, "wrong_server")
