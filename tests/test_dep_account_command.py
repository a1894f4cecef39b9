"""`manage.py dep_account`: scripted renewals with the console's services and rules."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from dep_accounts.models import AuditEvent, DEPAccount

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("dep_account", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _refused(*args: str) -> str:
    with pytest.raises(CommandError) as refusal:
        _run(*args)
    message = str(refusal.value)
    assert "\n" not in message
    return message


def test_a_scripted_renewal_from_a_new_account_to_its_renewed_token(abm, admin, tmp_path):
    pem = tmp_path / "springfield.pem"
    account_id = int(_run("create", "--name", "Springfield", "--public-key-out", str(pem)))
    account = DEPAccount.objects.get(pk=account_id)
    assert pem.read_text() == account.key_pair.certificate_pem
    assert account.display_name == "Springfield"

    first = tmp_path / "first.p7m"
    first.write_bytes(abm.token_for(account))
    out = _run("upload-token", str(account_id), str(first))
    assert "Server token of “Springfield” taken: valid until" in out
    account.refresh_from_db()
    assert (account.state, account.server_uuid) == (DEPAccount.State.OK, abm.server_uuid)

    renewal = tmp_path / "renewal.p7m"
    renewal.write_bytes(abm.token_for(account))
    _run("upload-token", str(account_id), str(renewal))
    assert account.server_tokens.count() == 2
    renewed = AuditEvent.objects.get(account=account, action="token_renewed")
    # No --user: the portal itself did it.
    assert (renewed.actor, renewed.actor_name) == (None, "")
    current = account.server_tokens.get(is_current=True)
    assert (current.file_name, current.uploaded_by) == ("renewal.p7m", None)


def test_upload_token_names_the_admin_given_with_user(abm, admin, dep_account, tmp_path):
    token = tmp_path / "smime.p7m"
    token.write_bytes(abm.token_for(dep_account))
    _run("upload-token", str(dep_account.pk), str(token), "--user", "alex.admin")
    renewed = AuditEvent.objects.get(account=dep_account, action="token_renewed")
    assert renewed.actor == admin


def test_user_must_be_an_admin(dep_account, viewer, tmp_path):
    token = tmp_path / "smime.p7m"
    token.write_bytes(b"not a token")
    message = _refused("upload-token", str(dep_account.pk), str(token), "--user", "val.viewer")
    assert message == "“val.viewer” is not an admin of the portal."
    assert _refused("sync", str(dep_account.pk), "--user", "mallory") == (
        "There is no active user “mallory”."
    )


def test_upload_token_refuses_a_token_for_another_server_with_the_forms_message(
    abm, dep_account, tmp_path
):
    other = abm.server_add("Shelbyville MDM")
    token = tmp_path / "smime.p7m"
    token.write_bytes(abm.token_for(dep_account, server_uuid=other))
    message = _refused("upload-token", str(dep_account.pk), str(token))
    assert message.startswith("This token is for the MDM server “Shelbyville MDM”")
    assert message.endswith("[wrong_server]")
    assert dep_account.server_tokens.count() == 1


def test_upload_token_needs_apple_id_changed_for_another_apple_id(abm, dep_account, tmp_path):
    token = tmp_path / "smime.p7m"
    token.write_bytes(abm.token_for(dep_account, apple_id="deputy@springfield.example"))
    message = _refused("upload-token", str(dep_account.pk), str(token))
    assert "downloaded by deputy@springfield.example" in message
    assert message.endswith("[apple_id_changed]")
    _run("upload-token", str(dep_account.pk), str(token), "--apple-id-changed")
    dep_account.refresh_from_db()
    assert dep_account.admin_apple_id == "deputy@springfield.example"


def test_upload_token_refuses_unreadable_empty_and_oversized_files(dep_account, tmp_path):
    missing = tmp_path / "missing.p7m"
    assert _refused("upload-token", str(dep_account.pk), str(missing)).startswith("Cannot read")
    huge = tmp_path / "huge.p7m"
    huge.write_bytes(b"x" * (64 * 1024 + 1))
    assert "a server token is about 2 KB" in _refused(
        "upload-token", str(dep_account.pk), str(huge)
    )
    empty = tmp_path / "empty.p7m"
    empty.write_bytes(b"")
    assert _refused("upload-token", str(dep_account.pk), str(empty)).endswith("[bad_file]")
    assert (
        _refused("upload-token", "999999", str(empty)) == "There is no DEP account with id 999999."
    )


def test_list_prints_a_table_and_json(dep_account):
    DEPAccount.objects.create(display_name="Shelbyville")
    table = _run("list").splitlines()
    assert table[0].split() == ["ID", "STATE", "EXPIRES", "DAYS", "NAME"]
    assert table[1].split()[1:3] == ["ok", f"{dep_account.token_expires_at:%Y-%m-%d}"]
    assert table[2].split()[1:] == ["awaiting_token", "-", "-", "Shelbyville"]
    listed = json.loads(_run("list", "--json"))
    assert [a["name"] for a in listed] == ["Springfield MDM", "Shelbyville"]
    assert listed[0]["days_left"] in (364, 365)
    assert listed[0]["links"]["console"].endswith(
        f"/admin/apple-dep/dep-accounts/{dep_account.pk}/"
    )


def test_show_prints_the_token_history_and_no_secret(dep_account):
    from dep_accounts.services.apple_access import server_token_credentials

    shown = json.loads(_run("show", str(dep_account.pk), "--json"))
    assert shown["server_uuid"] == dep_account.server_uuid
    [entry] = shown["token_history"]
    assert entry["is_current"] is True
    text = _run("show", str(dep_account.pk))
    assert "server_name: Springfield MDM" in text
    assert "* token uploaded" in text
    credentials = server_token_credentials(dep_account.server_tokens.get())
    for output in (json.dumps(shown), text):
        assert credentials.consumer_secret not in output
        assert credentials.access_secret not in output


def test_sync_is_queued_or_refused_with_the_reason(dep_account):
    message = _refused("sync", str(dep_account.pk))
    assert message.startswith("No subscription licence is installed")


def test_sync_is_queued_with_a_licence(dep_account, licence):
    assert "queued" in _run("sync", str(dep_account.pk))
    assert AuditEvent.objects.filter(account=dep_account, action="sync").exists()


def test_create_reports_a_public_key_it_cannot_write(db, tmp_path):
    message = _refused("create", "--public-key-out", str(tmp_path / "no" / "such" / "dir.pem"))
    assert "could not be written" in message
    assert Path(tmp_path / "no").exists() is False
