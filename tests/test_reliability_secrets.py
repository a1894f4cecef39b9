"""Secrets at rest: after a run that adds, renews and syncs DEP accounts through the console and the
services, no token secret and no private key is anywhere an operator or an attacker with a database
dump, the logs or a browser would look; and rotating the encryption key leaves nothing behind.

The secrets are the four OAuth values of every server token ever uploaded (current and replaced)
and every account's private key: its PEM and each base64 line of its body.
"""

from __future__ import annotations

import base64
import json
import logging
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.contrib import admin as django_admin
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.db.models import BinaryField
from django.test import Client
from django.urls import get_resolver, reverse

from dep_accounts.encryption import SecretDecryptionError, encrypted_fields, secret_decrypt
from dep_accounts.models import (
    ContentToken,
    DEPAccount,
    EnrollmentProfile,
    KeyPair,
    PushCertificate,
    ServerToken,
)
from dep_accounts.services.accounts import account_create
from dep_accounts.services.apple_access import server_token_credentials
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.content_tokens.state import content_token_refresh
from dep_accounts.services.intake import TokenFile, token_check, token_intake, token_take
from dep_accounts.services.push.intake import push_request_make
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.verdict import Intent
from dep_accounts.services.webhooks import webhook_create

pytestmark = pytest.mark.django_db

# Every page of the console an admin can GET, with the kind of object its id is. A console page
# added without an entry here fails `test_every_console_page_is_searched_for_secrets`.
PAGES = {
    "dep_accounts:dashboard": None,
    "dep_accounts:list": None,
    "dep_accounts:add": None,
    "dep_accounts:add_token": "awaiting",
    "dep_accounts:detail": "account",
    "dep_accounts:edit": "account",
    "dep_accounts:public_key": "account",
    "dep_accounts:devices": None,
    "dep_accounts:profiles": None,
    "dep_accounts:profile_add": None,
    "dep_accounts:profile_assign": "profile",
    "dep_accounts:subscription": None,
    "dep_accounts:audit_log": None,
    "dep_accounts:me": None,
    "dep_accounts:calendar": None,
    "dep_accounts:webhooks": None,
    "dep_accounts:bulk_renew": None,
    "dep_accounts:content_tokens": None,
    "dep_accounts:content_token_add": None,
    "dep_accounts:content_token_detail": "content_token",
    "dep_accounts:content_token_edit": "content_token",
    "dep_accounts:credentials": None,
    "dep_accounts:credentials_csv": None,
    "dep_accounts:push": None,
    "dep_accounts:push_edit": None,
}
POST_ONLY = {"dep_accounts:add_confirm", "dep_accounts:sync", "dep_accounts:profile_make_default"}
POST_ONLY |= {"dep_accounts:webhook_change"}
POST_ONLY |= {
    "dep_accounts:bulk_renew_confirm",
    "dep_accounts:start_renewal",
    "dep_accounts:terms_check",
    "dep_accounts:full_resync",
    "dep_accounts:email_test",
    "dep_accounts:content_token_check",
    "dep_accounts:push_request",
}
# The demo's caught emails: only with DEBUG on, and the tests run with it off (404).
DEMO_ONLY = {"dep_accounts:outbox"}
# Opened by the secret in its URL, not by a session: tests/test_calendar_feed.py reads it.
BY_SECRET_URL = {"dep_accounts:calendar_feed"}
# Asks for the password again before it shows anything: searched, once TOTP is on, by
# test_sign_in_secrets_stay_out_of_the_database_logs_and_pages.
SIGN_IN_PAGES = {"dep_accounts:two_factor"}
DEVICES_PER_SERVER = 30


def _upload(content: bytes, name: str = "smime.p7m") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pkcs7-mime")


def _edit_form(account: DEPAccount, **fields) -> dict:
    return {"display_name": account.display_name, "sync_interval_minutes": 60, **fields}


class Run:
    """What the run left behind: the accounts, and every response the console sent."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.responses: list[tuple[str, bytes]] = []

    def get(self, url: str, **params):
        response = self.client.get(url, params)
        self.responses.append((f"GET {url}", response.content))
        return response

    def post(self, url: str, data: dict | None = None):
        response = self.client.post(url, data or {})
        self.responses.append((f"POST {url}", response.content))
        return response


def _run(*, abm, admin, client: Client, push_portal=None) -> tuple[Run, dict[str, DEPAccount]]:
    """Add, renew and sync DEP accounts the ways an admin and the worker do."""
    run = Run(client)
    client.force_login(admin)
    # Springfield: added, renewed (once refused) and synced through the console.
    run.post(reverse("dep_accounts:add"))
    springfield = DEPAccount.objects.latest("pk")
    first_token = abm.token_for(springfield)
    run.post(
        reverse("dep_accounts:add_token", args=[springfield.pk]),
        {"token_file": _upload(first_token)},
    )
    assert run.post(reverse("dep_accounts:add_confirm", args=[springfield.pk])).status_code == 302
    renewal = abm.token_for(springfield)
    edit_url = reverse("dep_accounts:edit", args=[springfield.pk])
    assert (
        run.post(edit_url, _edit_form(springfield, token_file=_upload(renewal))).status_code == 302
    )
    # The replaced token, uploaded again: Apple refuses it.
    refused = run.post(edit_url, _edit_form(springfield, token_file=_upload(first_token)))
    assert "Apple does not accept this server token" in refused.content.decode()
    # The current token in a bulk renewal's preview, decrypted and checked with Apple.
    preview = run.post(reverse("dep_accounts:bulk_renew"), {"token_files": [_upload(renewal)]})
    assert "This is the token already in use" in preview.content.decode()
    # Shelbyville: another MDM server, added and renewed through the services.
    shelbyville_uuid = abm.server_add("Shelbyville MDM")
    shelbyville = account_create(actor=admin, display_name="Shelbyville")
    check = token_check(
        account=shelbyville,
        token_file=abm.token_for(shelbyville, server_uuid=shelbyville_uuid),
    )
    token_take(
        account=shelbyville, check=check, actor=admin, file_name="shelby.p7m", intent=Intent.ADD
    )
    token_intake(
        account=shelbyville,
        upload=TokenFile(
            "shelby-renewed.p7m", abm.token_for(shelbyville, server_uuid=shelbyville_uuid)
        ),
        actor=admin,
    )
    for account, server_uuid in [(springfield, abm.server_uuid), (shelbyville, shelbyville_uuid)]:
        abm.sim.control.devices_add(server_uuid, DEVICES_PER_SERVER)
        account.refresh_from_db()
        assert devices_sync(account=account).result == DEPAccount.SyncResult.OK
    # A profile defined at Apple and assigned to devices from the console.
    response = run.post(
        reverse("dep_accounts:profile_add"),
        {
            "account": springfield.pk,
            "name": "Staff iPads",
            "url": "https://mdm.springfield.example/enroll",
            "is_supervised": "on",
            "is_mandatory": "on",
        },
    )
    assert response.status_code == 302
    profile = EnrollmentProfile.objects.get(name="Staff iPads")
    serials = list(springfield.devices.values_list("serial_number", flat=True)[:5])
    assign_url = reverse("dep_accounts:profile_assign", args=[profile.pk])
    assert run.post(assign_url, {"serials": " ".join(serials)}).status_code == 302
    # Ogdenville: its token uploaded and awaiting confirmation, staged in the session.
    run.post(reverse("dep_accounts:add"))
    ogdenville = DEPAccount.objects.latest("pk")
    ogdenville_uuid = abm.server_add("Ogdenville MDM")
    run.post(
        reverse("dep_accounts:add_token", args=[ogdenville.pk]),
        {"token_file": _upload(abm.token_for(ogdenville, server_uuid=ogdenville_uuid))},
    )
    assert any(key.startswith("dep_accounts.staged_token.") for key, _ in client.session.items())
    # The push certificate: requested, created at Apple, uploaded, then refused on a new topic.
    if push_portal is not None:
        signed_request = run.post(reverse("dep_accounts:push_request")).content
        first = push_portal.create(signed_request)
        edit = {"certificate_file": _upload(first, "MDM_Certificate.pem")}
        edit["apple_id"] = push_portal.apple_id
        assert run.post(reverse("dep_accounts:push_edit"), edit).status_code == 302
        another = push_portal.create(signed_request)
        refused = run.post(
            reverse("dep_accounts:push_edit"), {"certificate_file": _upload(another, "b.pem")}
        )
        assert "instead of “Renew”" in refused.content.decode()
    content_token = _content_token_run(run, abm)
    return run, {
        "account": springfield,
        "awaiting": ogdenville,
        "profile": profile,
        "content_token": content_token,
    }


def _content_token_run(run: Run, abm) -> ContentToken:
    """A content token added, renewed, checked with Apple, refused for another location and
    staged for a take-over, through the console."""
    control = abm.sim.control
    springfield = control.vpp_location_create(abm.org_id, "Springfield High")
    shelbyville = control.vpp_location_create(abm.org_id, "Shelbyville High")
    add = reverse("dep_accounts:content_token_add")
    first = control.vpp_token_download(springfield, validity_days=300)
    assert run.post(add, {"token_file": _upload(first, "a.vpptoken")}).status_code == 302
    content_token = ContentToken.objects.get(location_uid=springfield)
    edit = reverse("dep_accounts:content_token_edit", args=[content_token.pk])
    renewed = control.vpp_token_download(springfield)
    assert run.post(edit, {"token_file": _upload(renewed, "b.vpptoken")}).status_code == 302
    run.post(reverse("dep_accounts:content_token_check", args=[content_token.pk]))
    wrong = control.vpp_token_download(shelbyville)
    assert "not for" in run.post(edit, {"token_file": _upload(wrong)}).content.decode()
    other = {"id": "other-mdm", "name": "Other MDM", "metadata": "x"}
    control.vpp_mdm_info_set(shelbyville, other)
    refused = run.post(add, {"token_file": _upload(control.vpp_token_download(shelbyville))})
    assert "another MDM" in refused.content.decode()
    for token in (first, renewed, wrong):
        _CONTENT_TOKENS.append(token.decode())
    return content_token


# The content token files of a run: ContentToken keeps only the newest, encrypted.
_CONTENT_TOKENS: list[str] = []


def _secrets() -> dict[str, str]:
    """Every secret value in the database, by where it comes from."""
    found = {}
    for server_token in ServerToken.objects.all():
        credentials = server_token_credentials(server_token)
        for field in ("consumer_key", "consumer_secret", "access_token", "access_secret"):
            found[f"{field} of server token {server_token.pk}"] = getattr(credentials, field)
    for key_pair in KeyPair.objects.all():
        pem = secret_decrypt(key_pair.private_key_encrypted).decode()
        found[f"private key of account {key_pair.account_id}"] = pem.strip()
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        for number, line in enumerate(body):
            # The last line of a PEM body can be a few characters: too short to mean anything.
            if len(line) >= 32:
                found[f"line {number} of the private key of account {key_pair.account_id}"] = line
    for number, content in enumerate(_CONTENT_TOKENS):
        found[f"content token file {number}"] = content
        inner = json.loads(base64.b64decode(content))["token"]
        found[f"the token inside content token file {number}"] = inner
    for content_token in ContentToken.objects.all():
        found[f"content token {content_token.pk}"] = secret_decrypt(
            content_token.credential_encrypted
        ).decode()
    for push in PushCertificate.objects.all():
        pem = secret_decrypt(push.private_key_encrypted).decode()
        found["private key of the push certificate"] = pem.strip()
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        for number, line in enumerate(body):
            if len(line) >= 32:
                found[f"line {number} of the push certificate's private key"] = line
    assert all(len(value) >= 32 for value in found.values())
    return found


def _leaks(secrets: dict[str, str], where: str, text: str) -> list[str]:
    return [f"{what} in {where}" for what, value in secrets.items() if value in text]


def _database_dump() -> str:
    """Every column of every row of every table, as text (binary columns decoded leniently)."""
    lines = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                values = [
                    bytes(v).decode("utf-8", "replace")
                    if isinstance(v, bytes | memoryview)
                    else str(v)
                    for v in row
                ]
                lines.append(f"{table}: {' | '.join(values)}")
    # Session data is signed base64: what the session holds, decoded.
    lines += [json.dumps(session.get_decoded()) for session in Session.objects.all()]
    return "\n".join(lines)


def _model_texts() -> str:
    texts = []
    for model in apps.get_models():
        for instance in model.objects.all():
            texts += [str(instance), repr(instance)]
    return "\n".join(texts)


def _django_admin_pages(client: Client) -> list[tuple[str, bytes]]:
    """The changelist, and each object's change and history page, of every model."""
    pages = []
    for model in apps.get_models():
        if not django_admin.site.is_registered(model):
            continue
        meta = model._meta
        prefix = f"admin:{meta.app_label}_{meta.model_name}"
        urls = [reverse(f"{prefix}_changelist")]
        for pk in model.objects.values_list("pk", flat=True):
            urls += [reverse(f"{prefix}_{view}", args=[pk]) for view in ("change", "history")]
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            pages.append((f"GET {url}", response.content))
    return pages


def test_every_console_page_is_searched_for_secrets():
    names = {
        f"dep_accounts:{pattern.name}"
        for pattern in get_resolver().url_patterns[-1].url_patterns
        if pattern.name
    }
    assert names == set(PAGES) | POST_ONLY | BY_SECRET_URL | SIGN_IN_PAGES | DEMO_ONLY


def test_no_secret_is_in_the_database_logs_pages_or_django_admin_after_a_run(
    abm, push_portal, admin, licence, client, django_user_model, caplog, settings
):
    caplog.set_level(logging.DEBUG)
    settings.VPP_API_URL = abm.sim.url + "/mdm/v2"
    _CONTENT_TOKENS.clear()
    run, objects = _run(abm=abm, admin=admin, client=client, push_portal=push_portal)
    for name, kind in PAGES.items():
        args = [objects[kind].pk] if kind else []
        assert run.get(reverse(name, args=args)).status_code == 200, name
    for account in DEPAccount.objects.exclude(state=DEPAccount.State.AWAITING_TOKEN):
        for name in ("dep_accounts:detail", "dep_accounts:edit", "dep_accounts:public_key"):
            run.get(reverse(name, args=[account.pk]))
    run.get(reverse("dep_accounts:devices"), removed="on")
    run.get(reverse("dep_accounts:audit_log"), account=objects["account"].pk)
    superuser = django_user_model.objects.create_superuser("sam.super", password="x" * 20)
    staff = Client()
    staff.force_login(superuser)

    secrets = _secrets()
    dumpdata = StringIO()
    call_command("dumpdata", stdout=dumpdata)
    leaks = _leaks(secrets, "dumpdata", dumpdata.getvalue())
    leaks += _leaks(secrets, "the database", _database_dump())
    leaks += _leaks(secrets, "str() or repr() of a model", _model_texts())
    admin_pages = _django_admin_pages(staff)
    for where, content in run.responses + admin_pages:
        leaks += _leaks(secrets, where, content.decode("utf-8", "replace"))
    records = caplog.get_records("call")
    logged = "\n".join(record.getMessage() for record in records) + caplog.text
    leaks += _leaks(secrets, "the logs", logged)

    assert not leaks, "\n".join(leaks)
    server_tokens = ServerToken.objects.count()
    key_pairs = KeyPair.objects.count()
    assert (server_tokens, key_pairs, PushCertificate.objects.count()) == (4, 3, 1)
    assert len([what for what in secrets if what.startswith("content token")]) == 4
    assert len(secrets) > server_tokens * 4 + (key_pairs + 1) * 20
    assert len(run.responses) >= 25
    assert len(admin_pages) > 2 * 2 * DEVICES_PER_SERVER
    assert any(record.levelno == logging.DEBUG for record in records)
    print(
        f"{len(secrets)} secret values of {server_tokens} server tokens and {key_pairs} private "
        f"keys searched for in {len(run.responses)} console responses, {len(admin_pages)} Django "
        f"admin pages, {len(records)} log records, the database and dumpdata"
    )


@pytest.fixture
def synced_account(dep_account, abm, licence):
    abm.sim.control.devices_add(abm.server_uuid, DEVICES_PER_SERVER)
    assert devices_sync(account=dep_account).result == DEPAccount.SyncResult.OK
    return dep_account


def _ciphertexts() -> list[bytes]:
    """Every Fernet token in every column of every table, whatever its model calls it."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else None
                    if raw is None and isinstance(value, str):
                        raw = value.encode()
                    if raw is not None and raw.startswith(FERNET_PREFIX):
                        found.append(raw)
    return found


# Every Fernet token starts with its version byte 0x80, base64url-encoded: "gAAAAA".
FERNET_PREFIX = b"gAAAAA"


def test_every_binary_column_is_an_encrypted_field_that_rotation_covers():
    """A secret stored in a new column must be named *_encrypted, or rotation would miss it."""
    covered = {(model, field) for model, field in encrypted_fields()}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, BinaryField):
                assert (model, field.name) in covered, f"{model.__name__}.{field.name}"
    assert {(m.__name__, f) for m, f in covered} == {
        ("KeyPair", "private_key_encrypted"),
        ("PushCertificate", "private_key_encrypted"),
        ("PushCertificate", "csr_encrypted"),
        ("ServerToken", "secrets_encrypted"),
        ("Webhook", "secret_encrypted"),
        ("ContentToken", "credential_encrypted"),
    }


def _decrypts_with(key: str, ciphertext: bytes) -> bool:
    try:
        Fernet(key).decrypt(ciphertext)
    except InvalidToken:
        return False
    return True


def test_rotating_the_encryption_key_re_encrypts_everything_so_the_old_key_can_go(
    synced_account, abm, push_portal, admin, settings
):
    account = synced_account
    old_keys = list(settings.SECRETS_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    credentials_before = [server_token_credentials(t) for t in ServerToken.objects.all()]
    settings.SECRETS_ENCRYPTION_KEYS = [new_key, *old_keys]

    # With the new key first, a renewal is stored under it; what was there stays under the old.
    token_intake(
        account=account, upload=TokenFile("smime.p7m", abm.token_for(account)), actor=admin
    )
    newest = account.server_tokens.get(is_current=True)
    assert _decrypts_with(new_key, bytes(newest.secrets_encrypted))
    older = [c for c in _ciphertexts() if c != bytes(newest.secrets_encrypted)]
    assert older and not any(_decrypts_with(new_key, c) for c in older)

    settings.SECRETS_ENCRYPTION_KEYS = old_keys
    push_portal.first_certificate(admin)
    webhook, webhook_secret = webhook_create(
        url="https://hooks.springfield.example/", events=["sync.failed"], actor=admin
    )
    settings.VPP_API_URL = abm.sim.url + "/mdm/v2"
    location = abm.sim.control.vpp_location_create(abm.org_id, "Springfield High")
    content = abm.sim.control.vpp_token_download(location)
    content_token = content_token_intake(
        content_token=None, upload=TokenFile("a.vpptoken", content), actor=admin
    )
    settings.SECRETS_ENCRYPTION_KEYS = [new_key, *old_keys]
    output = StringIO()
    call_command("rotate_encryption_keys", stdout=output)
    assert output.getvalue().splitlines()[0] == (
        "Re-encrypted under the newest key: 1 key pair (private_key_encrypted), "
        "2 server tokens (secrets_encrypted), 1 push certificate (private_key_encrypted), "
        "1 push certificate (csr_encrypted), 1 content token (credential_encrypted), "
        "1 webhook (secret_encrypted)."
    )
    assert len(_ciphertexts()) == 7
    assert all(_decrypts_with(new_key, c) for c in _ciphertexts())
    assert not any(_decrypts_with(key, c) for key in old_keys for c in _ciphertexts())

    # The old key removed: everything still decrypts, and the account still works with Apple.
    settings.SECRETS_ENCRYPTION_KEYS = [new_key]
    assert push_request_make(actor=admin)
    webhook.refresh_from_db()
    assert secret_decrypt(webhook.secret_encrypted) == webhook_secret.encode()
    content_token.refresh_from_db()
    assert secret_decrypt(content_token.credential_encrypted) == content.strip()
    content_token_refresh(content_token=content_token)
    assert content_token.state == ContentToken.State.OK and content_token.checked_at
    credentials_after = [server_token_credentials(t) for t in ServerToken.objects.all()]
    assert {c.access_token for c in credentials_before} < {
        c.access_token for c in credentials_after
    }
    abm.sim.control.devices_add(abm.server_uuid, 5)
    account.refresh_from_db()
    outcome = devices_sync(account=account)
    assert outcome.result == DEPAccount.SyncResult.OK
    assert account.devices.filter(removed_at__isnull=True).count() == DEVICES_PER_SERVER + 5
    token_intake(
        account=account, upload=TokenFile("smime.p7m", abm.token_for(account)), actor=admin
    )

    # Only the old key: nothing decrypts any more.
    settings.SECRETS_ENCRYPTION_KEYS = old_keys
    for server_token in ServerToken.objects.all():
        with pytest.raises(SecretDecryptionError):
            server_token_credentials(server_token)
    for key_pair in KeyPair.objects.all():
        with pytest.raises(SecretDecryptionError):
            secret_decrypt(key_pair.private_key_encrypted)
    with pytest.raises(SecretDecryptionError):
        secret_decrypt(ContentToken.objects.get().credential_encrypted)
    with pytest.raises(SecretDecryptionError):
        push_request_make(actor=admin)


def test_sign_in_secrets_stay_out_of_the_database_logs_and_pages(
    client, sso, admin, caplog, settings
):
    """The OIDC client secret, TOTP keys and recovery codes (issue 16)."""
    from tests.idpsim import ADMIN
    from tests.sign_in import password_sign_in, sign_in_through_idp, totp_enrol

    caplog.set_level(logging.DEBUG)
    responses = [sign_in_through_idp(Client(), sso, ADMIN)]
    responses.append(password_sign_in(client, "alex.admin"))
    totp, recovery_codes = totp_enrol(client)
    client.post(reverse("logout"))
    password_sign_in(client, "alex.admin")
    responses.append(client.post(reverse("mfa_authenticate"), {"code": totp.now()}))
    for name in ("dep_accounts:two_factor", "dep_accounts:me", "dep_accounts:audit_log"):
        responses.append(client.get(reverse(name)))
    secrets = {"the OIDC client secret": sso.client_secret, "the TOTP key": totp.secret}
    secrets |= {f"recovery code {n}": code for n, code in enumerate(recovery_codes)}
    assert all(len(value) >= 8 for value in secrets.values())

    dumpdata = StringIO()
    call_command("dumpdata", stdout=dumpdata)
    leaks = _leaks(secrets, "dumpdata", dumpdata.getvalue())
    leaks += _leaks(secrets, "the database", _database_dump())
    leaks += _leaks(secrets, "str() or repr() of a model", _model_texts())
    for response in responses:
        leaks += _leaks(secrets, response.wsgi_request.path, response.content.decode())
    logged = "\n".join(r.getMessage() for r in caplog.get_records("call")) + caplog.text
    leaks += _leaks(secrets, "the logs", logged)
    assert not leaks, "\n".join(leaks)


def test_rotating_the_encryption_key_re_encrypts_two_factor_secrets(client, admin, settings):
    from allauth.mfa.models import Authenticator

    from tests.sign_in import password_sign_in, totp_enrol

    password_sign_in(client, "alex.admin")
    totp, recovery_codes = totp_enrol(client)
    old_keys = list(settings.SECRETS_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [new_key, *old_keys]
    output = StringIO()
    call_command("rotate_encryption_keys", stdout=output)
    assert "two-factor secrets of 2 authenticator(s)" in output.getvalue()
    stored = [
        a.data.get("secret") or a.data["seed"] for a in Authenticator.objects.filter(user=admin)
    ]
    assert len(stored) == 2
    assert all(_decrypts_with(new_key, s.encode()) for s in stored)
    assert not any(_decrypts_with(key, s.encode()) for key in old_keys for s in stored)

    # The old key removed: the TOTP code and a recovery code still sign in.
    settings.SECRETS_ENCRYPTION_KEYS = [new_key]
    client.post(reverse("logout"))
    password_sign_in(client, "alex.admin")
    client.post(reverse("mfa_authenticate"), {"code": totp.now()})
    assert client.session["_auth_user_id"] == str(admin.pk)
    client.post(reverse("logout"))
    password_sign_in(client, "alex.admin")
    client.post(reverse("mfa_authenticate"), {"code": recovery_codes[-1]})
    assert client.session["_auth_user_id"] == str(admin.pk)
