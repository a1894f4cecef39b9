"""Bulk renewal: many .p7m files at once (named alike, as ABM names them), matched to accounts by
the public key they are encrypted for and checked with Apple (applesim over a socket); a preview
says what each file renews or why not, and nothing is saved until it is confirmed."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import keypair as apple_keypair
from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent, DEPAccount, ServerToken
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import TokenFile, token_check, token_take
from dep_accounts.services.renewal.batch import NO_ACCOUNT_KEY, bulk_renewal_preview
from dep_accounts.services.verdict import Intent

pytestmark = pytest.mark.django_db

ABM_NAME = "MDM_Token_2026-05-04T10-00-00Z_smime.p7m"
BULK_URL = "/admin/apple-dep/dep-accounts/bulk-renew/"
CONFIRM_URL = "/admin/apple-dep/dep-accounts/bulk-renew/confirm/"


@pytest.fixture
def second_account(abm, admin) -> DEPAccount:
    """Another DEP account, for applesim's Shelbyville MDM, with a current token."""
    account = account_create(actor=admin)
    server_uuid = abm.server_add("Shelbyville MDM")
    token_file = abm.token_for(account, server_uuid=server_uuid)
    check = token_check(account=account, token_file=token_file)
    return token_take(
        account=account, check=check, actor=admin, file_name="first.p7m", intent=Intent.ADD
    ).account


def _files(*contents: bytes, name: str = ABM_NAME) -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile(name, content, content_type="application/pkcs7-mime")
        for content in contents
    ]


def _snapshot() -> list[dict]:
    return [
        {**row, "secrets_encrypted": bytes(row["secrets_encrypted"])}
        for row in ServerToken.objects.order_by("id").values()
    ] + list(DEPAccount.objects.order_by("id").values())


def _foreign_token(abm) -> bytes:
    """A token encrypted for the public key of another MDM product."""
    key_pair = apple_keypair.key_pair_generate(common_name="another-mdm")
    other = SimpleNamespace(
        key_pair=SimpleNamespace(certificate_pem=key_pair.certificate_pem.decode())
    )
    return abm.token_for(other, server_uuid=abm.server_add("Another MDM"))


def test_a_token_names_the_recipient_of_its_accounts_certificate(abm, dep_account):
    recipients = apple_envelope.server_token_recipients(abm.token_for(dep_account))
    certificate = dep_account.key_pair.certificate_pem.encode()
    assert recipients == [apple_envelope.certificate_recipient_id(certificate)]
    with pytest.raises(apple_token.NotAServerTokenError):
        apple_envelope.server_token_recipients(b"%PDF-1.7 not a token")


def test_the_preview_matches_files_named_alike_and_saves_nothing_until_confirmed(
    abm, client_as, admin, dep_account, second_account
):
    springfield = abm.token_for(dep_account)
    shelbyville = abm.token_for(second_account, server_uuid=second_account.server_uuid)
    before = _snapshot()
    client = client_as(admin)
    response = client.post(
        BULK_URL, {"token_files": _files(shelbyville, b"hello", springfield, _foreign_token(abm))}
    )
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(row.account, row.applies) for row in rows] == [
        (second_account, True),
        (None, False),
        (dep_account, True),
        (None, False),
    ]
    assert rows[0].server_name == "Shelbyville MDM"
    assert rows[2].server_name == "Springfield MDM"
    assert rows[2].expires_at >= dep_account.token_expires_at
    assert rows[2].apple_id == "it.admin@springfield.example"
    assert "not an Apple server token" in rows[1].problem
    assert rows[3].problem == NO_ACCOUNT_KEY
    page = response.content.decode()
    assert "Renew 2 accounts" in page
    assert "encrypted for a public key no DEP account here has" in page
    assert _snapshot() == before

    # Staged encrypted in the session, as the Add DEP Account flow does.
    staged = client.session["dep_accounts.bulk_renewal"]
    assert [s["account_id"] for s in staged] == [second_account.pk, dep_account.pk]
    assert secret_decrypt(staged[0]["token_file"].encode()) == shelbyville

    response = client.post(CONFIRM_URL, follow=True)
    assert "Renewed 2 accounts:" in response.content.decode()
    for account in (dep_account, second_account):
        account.refresh_from_db()
        assert account.token_expires_at > timezone.now() + timedelta(days=364)
        assert account.server_tokens.filter(is_current=True, file_name=ABM_NAME).exists()
        assert account.audit_events.filter(action=AuditEvent.Action.TOKEN_RENEWED).exists()
    # The refused files are in the audit log too.
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REJECTED, actor=admin)
    assert refused.count() == 2
    # Confirming again finds nothing staged.
    response = client.post(CONFIRM_URL, follow=True)
    assert "no longer at hand" in response.content.decode()


def test_the_preview_says_why_each_file_will_not_be_applied(
    abm, admin, dep_account, second_account
):
    wrong_server = abm.token_for(dep_account, server_uuid=abm.server_add("Ogdenville MDM"))
    older = abm.token_for(dep_account, validity_days=100)
    refused_by_apple = abm.token_for(second_account, server_uuid=second_account.server_uuid)
    newest = abm.token_for(second_account, server_uuid=second_account.server_uuid)
    rows = bulk_renewal_preview(
        token_files=[
            TokenFile("a.p7m", wrong_server),
            TokenFile("b.p7m", older),
            TokenFile("c.p7m", refused_by_apple),
            TokenFile("d.p7m", newest),
            TokenFile("e.p7m", newest),
            TokenFile("f.p7m", b"x" * 70_000),
        ],
        actor=admin,
    )
    problems = {row.file_name: row.problem for row in rows}
    assert "Ogdenville MDM" in problems["a.p7m"]
    assert "not for “Springfield MDM”" in problems["a.p7m"]
    assert "older download" in problems["b.p7m"]
    assert "Apple does not accept this server token" in problems["c.p7m"]
    assert problems["d.p7m"] == ""
    assert "“d.p7m” renews" in problems["e.p7m"]
    assert "this file is skipped" in problems["e.p7m"]
    assert "a server token is about 2 KB" in problems["f.p7m"]
    assert [row.reason for row in rows] == [
        "wrong_server",
        "older_token",
        "apple_refused",
        "",
        "duplicate",
        "too_large",
    ]


def test_an_expired_token_is_not_applied(abm, admin, dep_account):
    rows = bulk_renewal_preview(
        token_files=[TokenFile(ABM_NAME, abm.token_for(dep_account))],
        actor=admin,
        now=timezone.now() + timedelta(days=400),
    )
    assert "expired" in rows[0].problem


def test_an_apple_id_change_is_flagged_and_applied_only_when_confirmed(
    abm, client_as, admin, dep_account, second_account
):
    client = client_as(admin)
    deputy = "deputy@springfield.example"
    springfield = abm.token_for(dep_account, apple_id=deputy)
    shelbyville = abm.token_for(
        second_account, server_uuid=second_account.server_uuid, apple_id=deputy
    )
    response = client.post(BULK_URL, {"token_files": _files(springfield, shelbyville)})
    rows = response.context["rows"]
    assert [row.previous_apple_id for row in rows] == ["it.admin@springfield.example"] * 2
    page = response.content.decode()
    assert page.count("Apple ID changed") == 2
    assert page.count('name="confirm_apple_id"') == 2

    # Only the first row's change is confirmed: the second is reported, the first applied.
    response = client.post(CONFIRM_URL, {"confirm_apple_id": ["0"]}, follow=True)
    page = response.content.decode()
    assert "Renewed 1 account:" in page
    assert "tick “The Apple ID that manages this server in ABM has changed”" in page
    dep_account.refresh_from_db()
    second_account.refresh_from_db()
    assert dep_account.admin_apple_id == deputy
    assert second_account.admin_apple_id == "it.admin@springfield.example"
    assert dep_account.server_tokens.get(is_current=True).apple_id_change_confirmed

    # The custodian history on the account page shows the change and who confirmed it.
    page = client.get(dep_account.get_absolute_url()).content.decode()
    assert "Token custodians" in page
    assert (
        f"Changed from it.admin@springfield.example to {deputy}, confirmed by alex.admin on "
        f"{timezone.localdate():%-d %b %Y}"
    ) in page


def test_a_failure_at_confirm_time_stops_only_its_own_row(
    abm, client_as, admin, dep_account, second_account
):
    client = client_as(admin)
    springfield = abm.token_for(dep_account)
    shelbyville = abm.token_for(second_account, server_uuid=second_account.server_uuid)
    client.post(BULK_URL, {"token_files": _files(springfield, shelbyville)})
    # Someone downloads Shelbyville's token again in ABM between the preview and the confirm.
    abm.token_for(second_account, server_uuid=second_account.server_uuid)
    before = list(second_account.server_tokens.values_list("id", "is_current"))
    response = client.post(CONFIRM_URL, follow=True)
    page = response.content.decode()
    assert "Renewed 1 account:" in page
    assert "did not renew “Shelbyville MDM”" in page
    assert list(second_account.server_tokens.values_list("id", "is_current")) == before
    dep_account.refresh_from_db()
    assert dep_account.server_tokens.filter(is_current=True, file_name=ABM_NAME).exists()


def test_no_file_chosen_is_a_form_error(client_as, admin):
    response = client_as(admin).post(BULK_URL, {})
    assert response.status_code == 200
    assert "Choose the .p7m, .vpptoken or .pem files to renew with." in response.content.decode()


def test_the_bulk_renew_button_and_pages_are_for_admins_only(
    abm, client, client_as, admin, viewer, dep_account
):
    list_url = reverse("dep_accounts:list")
    assert "Bulk renew" in client_as(admin).get(list_url).content.decode()
    page = client_as(admin).get(BULK_URL).content.decode()
    assert 'type="file"' in page
    assert "multiple" in page
    assert "Bulk renew" not in client_as(viewer).get(list_url).content.decode()
    for url in (BULK_URL, CONFIRM_URL):
        assert client_as(viewer).get(url).status_code == 403
        assert client_as(viewer).post(url).status_code == 403
    client.logout()
    response = client.post(BULK_URL, {"token_files": _files(abm.token_for(dep_account))})
    assert response.url.startswith(reverse("login"))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REJECTED).exists()
