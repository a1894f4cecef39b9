"""The JSON API as a script uses it: who may call what, DEP accounts, server token renewal, sync,
the audit log; every response the tests receive is validated against the OpenAPI document
(tests/api_contract.py). API tokens themselves are in test_api_tokens.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone
from jsonschema import Draft202012Validator

from dep_accounts.api.openapi import OPENAPI
from dep_accounts.api.representations import refusal_codes
from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.services.apple_access import server_token_credentials
from dep_accounts.services.verdict import WrongServerError
from tests.api_contract import API
from tests.token_corpus import DEEP_JSON, p7m_encrypted

pytestmark = pytest.mark.django_db

P7M = "application/pkcs7-mime"


def _list_url() -> str:
    return reverse("api:dep_accounts")


def _url(name: str, account: DEPAccount) -> str:
    return reverse(f"api:{name}", args=[account.pk])


def _endpoints(account: DEPAccount) -> list[tuple[str, str]]:
    return [
        ("GET", _list_url()),
        ("POST", _list_url()),
        ("GET", _url("dep_account", account)),
        ("GET", _url("dep_account_public_key", account)),
        ("POST", _url("dep_account_token", account)),
        ("POST", _url("dep_account_sync", account)),
        ("GET", reverse("api:audit_log")),
    ]


def _call(api: API, method: str, path: str, key: str | None):
    if method == "GET":
        return api.get(path, key=key)
    return api.post(path, key=key, data=b"", content_type=P7M)


def _snapshot(account: DEPAccount) -> tuple:
    account.refresh_from_db()
    current = account.server_tokens.get(is_current=True)
    return (account.token_expires_at, account.state, current.pk, account.server_tokens.count())


# Who may call what.


@pytest.mark.parametrize("who", [None, "bad", "revoked"])
def test_every_endpoint_refuses_a_missing_unknown_or_revoked_key(api, keys, dep_account, who):
    accounts_before, events_before = DEPAccount.objects.count(), AuditEvent.objects.count()
    for method, path in _endpoints(dep_account):
        response = _call(api, method, path, keys.get(who))
        assert response.status_code == 401, (method, path)
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["code"] == "unauthenticated"
    assert (DEPAccount.objects.count(), AuditEvent.objects.count()) == (
        accounts_before,
        events_before,
    )


def test_a_signed_in_session_is_not_accepted_by_the_api(api, admin, dep_account):
    api.client.force_login(admin)
    response = api.get(_list_url())
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_a_key_of_a_user_without_a_role_is_forbidden_everywhere(api, keys, dep_account):
    for method, path in _endpoints(dep_account):
        response = _call(api, method, path, keys["no role"])
        assert response.status_code == 403, (method, path)
        assert response.json() == {
            "error": "Your account has no role in this portal.",
            "code": "forbidden",
        }


def test_a_viewer_key_reads_but_changes_nothing(api, keys, dep_account, licence):
    before = _snapshot(dep_account)
    events_before = AuditEvent.objects.count()
    for method, path in _endpoints(dep_account):
        response = _call(api, method, path, keys["viewer"])
        assert response.status_code == (200 if method == "GET" else 403), (method, path)
    assert _snapshot(dep_account) == before
    assert AuditEvent.objects.count() == events_before
    assert DEPAccount.objects.count() == 1


def test_an_admin_key_reaches_every_endpoint(api, keys, dep_account, licence, abm):
    expected = {
        ("GET", _list_url()): 200,
        ("POST", _list_url()): 201,
        ("GET", _url("dep_account", dep_account)): 200,
        ("GET", _url("dep_account_public_key", dep_account)): 200,
        ("POST", _url("dep_account_sync", dep_account)): 202,
        ("GET", reverse("api:audit_log")): 200,
    }
    for (method, path), status in expected.items():
        if method == "POST" and path == _list_url():
            response = api.post(path, key=keys["admin"], data={}, content_type="application/json")
        else:
            response = _call(api, method, path, keys["admin"])
        assert response.status_code == status, (method, path)
    response = api.post(
        _url("dep_account_token", dep_account),
        key=keys["admin"],
        data=abm.token_for(dep_account, validity_days=365),
        content_type=P7M,
    )
    assert response.status_code == 200


def test_a_method_an_endpoint_does_not_take_is_405(api, keys, dep_account):
    response = api.get(_url("dep_account_sync", dep_account), key=keys["admin"])
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["code"] == "method_not_allowed"


def test_an_account_that_does_not_exist_is_404_in_json(api, keys, dep_account):
    missing = dep_account.pk + 1000
    for name in ("dep_account", "dep_account_public_key"):
        response = api.get(reverse(f"api:{name}", args=[missing]), key=keys["viewer"])
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    response = api.post(reverse("api:dep_account_sync", args=[missing]), key=keys["admin"])
    assert response.status_code == 404


def test_a_key_needs_no_csrf_token_but_a_post_without_a_key_does(keys, admin, dep_account):
    browser = Client(enforce_csrf_checks=True)
    url = _url("dep_account_sync", dep_account)
    # The key alone authenticates: there is no cookie for a forged request to ride on.
    response = browser.post(url, headers={"Authorization": f"Bearer {keys['admin']}"})
    assert response.status_code == 409
    assert response.json()["code"] == "sync_unavailable"
    browser.force_login(admin)
    response = browser.post(url)
    assert response.status_code == 403
    assert b"CSRF verification failed" in response.content


# Reading DEP accounts.


def test_the_list_shows_each_accounts_expiry_state_and_links(api, keys, dep_account):
    response = api.get(_list_url(), key=keys["viewer"])
    assert response.status_code == 200
    page = response.json()
    assert (page["count"], page["next"], page["previous"]) == (1, None, None)
    [listed] = page["results"]
    assert listed["id"] == dep_account.pk
    assert listed["server_name"] == "Springfield MDM"
    assert listed["org_name"] == "Springfield Schools"
    assert listed["admin_apple_id"] == "it.admin@springfield.example"
    assert listed["state"] == "ok"
    assert listed["days_left"] in (364, 365)
    expires = datetime.fromisoformat(listed["token_expires_at"])
    assert expires == dep_account.token_expires_at.replace(microsecond=expires.microsecond)
    assert listed["token_expires_at"].endswith("Z")
    assert (
        listed["links"]["console"]
        == f"http://testserver/admin/apple-dep/dep-accounts/{dep_account.pk}/"
    )
    assert listed["links"]["self"] == f"http://testserver{_url('dep_account', dep_account)}"


def test_the_list_is_paginated_100_a_page(api, keys):
    DEPAccount.objects.bulk_create(DEPAccount(display_name=f"School {n:03}") for n in range(150))
    first = api.get(_list_url(), key=keys["viewer"]).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (150, 100, None)
    second = api.get(first["next"], key=keys["viewer"]).json()
    assert (len(second["results"]), second["next"]) == (50, None)
    assert api.get(second["previous"], key=keys["viewer"]).json() == first
    assert {a["id"] for a in first["results"]}.isdisjoint(a["id"] for a in second["results"])
    response = api.get(_list_url(), key=keys["viewer"], page=3)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def _accounts_add(count: int) -> None:
    expires = timezone.now() + timedelta(days=200)
    DEPAccount.objects.bulk_create(
        DEPAccount(
            display_name=f"School {n}",
            server_uuid=f"uuid-{n}-{count}",
            state=DEPAccount.State.OK,
            token_expires_at=expires,
        )
        for n in range(count)
    )


def test_the_list_takes_the_same_number_of_queries_for_3_and_30_accounts(api, keys):
    api.get(_list_url(), key=keys["viewer"])  # The key's last use is recorded once a minute.
    _accounts_add(3)
    with CaptureQueriesContext(connection) as three:
        assert len(api.get(_list_url(), key=keys["viewer"]).json()["results"]) == 3
    _accounts_add(27)
    with CaptureQueriesContext(connection) as thirty:
        assert len(api.get(_list_url(), key=keys["viewer"]).json()["results"]) == 30
    assert len(three) == len(thirty)
    assert len(thirty) <= 5


def test_the_detail_shows_the_token_history_and_never_a_secret(api, keys, dep_account, abm):
    old_token = dep_account.server_tokens.get()
    api.post(
        _url("dep_account_token", dep_account),
        key=keys["admin"],
        data=abm.token_for(dep_account, validity_days=365),
        content_type=P7M,
    )
    response = api.get(_url("dep_account", dep_account), key=keys["viewer"])
    detail = response.json()
    history = detail["token_history"]
    assert [t["is_current"] for t in history] == [True, False]
    assert [t["uploaded_by"] for t in history] == ["alex.admin", "alex.admin"]
    assert history[1]["consumer_key_fingerprint"] == old_token.consumer_key_fingerprint
    assert all(t["admin_apple_id"] == "it.admin@springfield.example" for t in history)
    body = response.content.decode()
    for server_token in dep_account.server_tokens.all():
        credentials = server_token_credentials(server_token)
        for secret in (
            credentials.consumer_key,
            credentials.consumer_secret,
            credentials.access_token,
            credentials.access_secret,
        ):
            assert secret not in body


# Server tokens: a new account, renewals, refusals.


def test_a_script_adds_an_account_from_key_pair_to_first_token(api, keys, abm):
    response = api.post(
        _list_url(),
        key=keys["admin"],
        data={"name": "Shelbyville"},
        content_type="application/json",
    )
    assert response.status_code == 201
    created = response.json()
    assert (created["name"], created["state"], created["token_history"]) == (
        "Shelbyville",
        "awaiting_token",
        [],
    )
    assert response["Location"] == created["links"]["self"]
    pem = api.get(created["links"]["public_key"], key=keys["viewer"])
    assert pem["Content-Type"] == "application/x-pem-file"
    account = DEPAccount.objects.get(pk=created["id"])
    assert pem.content.decode() == account.key_pair.certificate_pem

    response = api.post(
        created["links"]["token"], key=keys["admin"], data=abm.token_for(account), content_type=P7M
    )
    assert response.status_code == 200
    taken = response.json()
    assert (taken["state"], taken["server_uuid"], taken["server_name"]) == (
        "ok",
        abm.server_uuid,
        "Springfield MDM",
    )
    event = AuditEvent.objects.filter(account=account).get(action="account_created")
    assert event.actor_name == "alex.admin"


def test_a_new_account_refuses_the_token_of_a_server_already_added(api, keys, dep_account, abm):
    created = api.post(_list_url(), key=keys["admin"]).json()
    account = DEPAccount.objects.get(pk=created["id"])
    response = api.post(
        created["links"]["token"], key=keys["admin"], data=abm.token_for(account), content_type=P7M
    )
    assert response.status_code == 422
    refusal = response.json()
    assert (refusal["code"], refusal["existing_account_id"]) == ("wrong_server", dep_account.pk)
    assert "already added" in refusal["error"]
    account.refresh_from_db()
    assert account.state == DEPAccount.State.AWAITING_TOKEN
    assert AuditEvent.objects.filter(account=account, action="token_rejected").exists()


def test_a_renewal_through_the_api_replaces_the_current_token(api, keys, dep_account, abm):
    old_expiry = dep_account.token_expires_at
    old_token = dep_account.server_tokens.get()
    response = api.post(
        _url("dep_account_token", dep_account),
        key=keys["admin"],
        data=abm.token_for(dep_account, validity_days=365),
        content_type="application/octet-stream",
    )
    assert response.status_code == 200
    dep_account.refresh_from_db()
    assert dep_account.token_expires_at >= old_expiry
    current = dep_account.server_tokens.get(is_current=True)
    assert current.consumer_key_fingerprint != old_token.consumer_key_fingerprint
    assert current.uploaded_by.get_username() == "alex.admin"
    assert response.json()["days_left"] in (364, 365)
    renewed = AuditEvent.objects.get(account=dep_account, action="token_renewed")
    assert renewed.actor_name == "alex.admin"


def test_a_renewal_also_takes_a_multipart_form_with_token_file(api, keys, dep_account, abm):
    token_file = abm.token_for(dep_account, validity_days=365)
    response = api.post(
        _url("dep_account_token", dep_account),
        key=keys["admin"],
        data={"token_file": SimpleUploadedFile("smime.p7m", token_file, content_type=P7M)},
    )
    assert response.status_code == 200
    assert dep_account.server_tokens.count() == 2


def test_renewal_rejects_token_for_another_server(api, keys, dep_account, abm):
    other_uuid = abm.server_add("Shelbyville MDM")
    before = _snapshot(dep_account)
    response = api.post(
        _url("dep_account_token", dep_account),
        key=keys["admin"],
        data=abm.token_for(dep_account, server_uuid=other_uuid),
        content_type=P7M,
    )
    assert response.status_code == 422
    refusal = response.json()
    assert refusal["code"] == "wrong_server"
    assert refusal["found"] == {
        "server_name": "Shelbyville MDM",
        "server_uuid": other_uuid,
        "org_name": "Springfield Schools",
    }
    assert refusal["existing_account_id"] is None
    assert "not for “Springfield MDM”" in refusal["error"]
    assert _snapshot(dep_account) == before


def test_renewal_by_another_apple_id_needs_apple_id_changed(api, keys, dep_account, abm):
    token_file = abm.token_for(dep_account, apple_id="deputy@springfield.example")
    url = _url("dep_account_token", dep_account)
    before = _snapshot(dep_account)
    response = api.post(url, key=keys["admin"], data=token_file, content_type=P7M)
    assert response.status_code == 422
    refusal = response.json()
    assert (refusal["code"], refusal["previous_apple_id"], refusal["found_apple_id"]) == (
        "apple_id_changed",
        "it.admin@springfield.example",
        "deputy@springfield.example",
    )
    assert _snapshot(dep_account) == before

    response = api.post(
        f"{url}?apple_id_changed=true", key=keys["admin"], data=token_file, content_type=P7M
    )
    assert response.status_code == 200
    assert response.json()["admin_apple_id"] == "deputy@springfield.example"
    assert AuditEvent.objects.filter(account=dep_account, action="apple_id_changed").exists()


def test_renewal_refuses_an_expired_token(api, keys, dep_account, abm):
    token_file = abm.token_for(dep_account, validity_days=1)
    before = _snapshot(dep_account)
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        response = api.post(
            _url("dep_account_token", dep_account),
            key=keys["admin"],
            data=token_file,
            content_type=P7M,
        )
    assert response.status_code == 422
    assert response.json()["code"] == "bad_file"
    assert "expired" in response.json()["error"]
    assert _snapshot(dep_account) == before


def test_renewal_refuses_the_token_already_in_use(api, keys, dep_account, abm):
    token_file = abm.token_for(dep_account, validity_days=200)
    response = api.post(
        _url("dep_account_token", dep_account), key=keys["admin"], data=token_file, content_type=P7M
    )
    assert response.status_code == 422
    assert response.json()["code"] == "older_token"
    assert "before the current one" in response.json()["error"]


def test_a_file_too_large_to_be_a_token_is_413_and_not_read(api, keys, dep_account, settings):
    before = _snapshot(dep_account)
    response = api.post(
        _url("dep_account_token", dep_account),
        key=keys["admin"],
        data=b"x" * (settings.DEP_TOKEN_MAX_BYTES + 1),
        content_type=P7M,
    )
    assert response.status_code == 413
    refusal = response.json()
    assert (refusal["code"], refusal["limit_bytes"]) == ("too_large", settings.DEP_TOKEN_MAX_BYTES)
    assert "a server token is about 2 KB" in refusal["error"]
    assert _snapshot(dep_account) == before
    assert AuditEvent.objects.filter(account=dep_account, action="token_rejected").exists()


def test_json_nested_40000_deep_is_refused_as_a_body_and_inside_a_token(api, keys, dep_account):
    response = api.post(
        _list_url(), key=keys["admin"], data=DEEP_JSON, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "nests too deeply" in response.json()["error"]
    assert DEPAccount.objects.count() == 1

    plaintext = b"-----BEGIN MESSAGE-----\n" + DEEP_JSON + b"\n-----END MESSAGE-----\n"
    token = p7m_encrypted(plaintext, certificate_pem=dep_account.key_pair.certificate_pem.encode())
    response = api.post(
        _url("dep_account_token", dep_account), key=keys["admin"], data=token, content_type=P7M
    )
    assert response.status_code == 422
    assert response.json()["code"] == "bad_file"
    assert "nested too deeply" in response.json()["error"]
    rejected = AuditEvent.objects.get(account=dep_account, action="token_rejected")
    assert "nested too deeply" in rejected.message


def test_an_empty_or_missing_file_is_refused_with_the_forms_message(api, keys, dep_account):
    url = _url("dep_account_token", dep_account)
    # What `curl --data-binary @empty.p7m` sends: a type, and no body.
    empty = api.post(url, key=keys["admin"], data=b"", content_type=P7M, CONTENT_TYPE=P7M)
    assert empty.status_code == 422
    assert empty.json()["code"] == "bad_file"
    assert empty.json()["error"].startswith("This file is empty")
    missing = api.post(url, key=keys["admin"], data={"apple_id_changed": "true"})
    assert missing.status_code == 422
    assert missing.json()["error"] == "Choose the .p7m file you downloaded from ABM."
    wrong_type = api.post(url, key=keys["admin"], data={}, content_type="application/json")
    assert wrong_type.status_code == 415


# Sync and the audit log.


def test_a_sync_is_queued_and_audited(api, keys, dep_account, licence):
    response = api.post(_url("dep_account_sync", dep_account), key=keys["admin"])
    assert response.status_code == 202
    assert response.json() == {"status": "queued"}
    event = AuditEvent.objects.filter(account=dep_account, action="sync").latest("id")
    assert event.actor_name == "alex.admin"


def test_a_sync_that_cannot_start_is_409_with_the_reason(api, keys, dep_account):
    response = api.post(_url("dep_account_sync", dep_account), key=keys["admin"])
    assert response.status_code == 409
    assert response.json() == {
        "error": "No subscription licence is installed: upload one on the Subscription page first.",
        "code": "sync_unavailable",
    }


def test_the_audit_log_filters_by_account_action_and_time(api, keys, dep_account, abm):
    other_uuid = abm.server_add("Shelbyville MDM")
    url = _url("dep_account_token", dep_account)
    api.post(
        url,
        key=keys["admin"],
        data=abm.token_for(dep_account, server_uuid=other_uuid),
        content_type=P7M,
    )
    log = reverse("api:audit_log")
    everything = api.get(log, key=keys["viewer"]).json()
    assert everything["count"] == AuditEvent.objects.count()
    [rejected] = api.get(
        log, key=keys["viewer"], account=dep_account.pk, action="token_rejected"
    ).json()["results"]
    assert rejected["actor"] == "alex.admin"
    assert rejected["account_name"] == "Springfield MDM"
    assert rejected["outcome"] == "failure"
    assert rejected["details"]["reason"] == "wrong_server"
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert api.get(log, key=keys["viewer"], since=later).json()["count"] == 0
    since = api.get(log, key=keys["viewer"], since=rejected["at"]).json()
    assert rejected in since["results"]
    for bad in ({"since": "yesterday"}, {"since": "2026-01-01T00:00:00"}, {"action": "x"}):
        response = api.get(log, key=keys["viewer"], **bad)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid"


# The OpenAPI document.


def test_the_openapi_document_is_served_to_anyone_and_describes_every_route(api):
    response = api.get(reverse("api:openapi"))
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    api_routes = get_resolver().url_patterns
    [include] = [p for p in api_routes if getattr(p, "namespace", None) == "api"]
    routes = {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern))
        for p in include.url_patterns
        if isinstance(p, URLPattern)
    }
    assert routes == set(document["paths"])
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_every_documented_operation_names_its_errors():
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            if path == "/openapi.json":
                continue
            assert {"200", "201", "202"} & set(operation["responses"]), (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_the_refusal_codes_come_from_the_refusal_types():
    documented = OPENAPI["components"]["schemas"]["TokenRefused"]["properties"]["code"]["enum"]
    every_code = {"bad_file", "apple_refused", "apple_unreachable", "wrong_server"}
    every_code |= {"apple_id_changed", "older_token", "concurrent_upload", "invalid"}
    assert every_code <= set(documented)

    class LicenceLimitError(WrongServerError):
        code = "licence_limit"

    assert refusal_codes() == [*documented, "licence_limit"]


def test_every_component_is_closed_to_keys_it_does_not_describe():
    for name, schema in OPENAPI["components"]["schemas"].items():
        assert schema["additionalProperties"] is False, name
        assert set(schema["required"]) <= set(schema["properties"]), name


# Found by fuzzing (tests/test_fuzz_api.py): each request below got a 500 or an HTML page.
@pytest.mark.parametrize("account", ["²", "١٢", "99999999999999999999999"])
def test_an_audit_log_filter_on_an_account_id_that_is_no_id_is_400(api, keys, account):
    response = api.get(reverse("api:audit_log"), key=keys["admin"], account=account)

    assert response.status_code == 400
    assert "id of a DEP account" in response.json()["error"]


@pytest.mark.parametrize("name", ["dep_account", "dep_account_public_key", "dep_account_sync"])
def test_an_account_id_past_what_a_database_holds_is_404(api, keys, name):
    path = reverse(f"api:{name}", args=[10**22])
    method = "POST" if name == "dep_account_sync" else "GET"

    response = api.request(method, path, key=keys["admin"])

    assert response.status_code == 404


def test_a_malformed_multipart_form_is_a_400_in_json_not_an_html_page(api, keys, dep_account):
    broken = b"[" * 5000
    for url in (_list_url(), _url("dep_account_token", dep_account)):
        response = api.post(
            url, key=keys["admin"], data=broken, content_type="multipart/form-data; boundary=x"
        )
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert "could not be read as a form" in response.json()["error"]
