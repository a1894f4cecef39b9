"""/metrics read the way Prometheus reads it: with its bearer token, by a text-format parser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dep_accounts.models import DEPAccount

pytestmark = pytest.mark.django_db

TOKEN = "scrape-4f9d2c1e-springfield"
State = DEPAccount.State


@pytest.fixture(autouse=True)
def _metrics_on(settings) -> None:
    settings.METRICS_TOKEN = TOKEN


def _scrape(client, token: str = TOKEN):
    return client.get(reverse("metrics"), HTTP_AUTHORIZATION=f"Bearer {token}")


def _families(response) -> dict:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def _samples(family) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def test_prometheus_reads_expiry_days_left_state_sync_and_licence(client, dep_account, licence):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        last_sync_at=timezone.now() - timedelta(minutes=5),
        last_sync_result=DEPAccount.SyncResult.FAILED,
    )
    dep_account.refresh_from_db()

    families = _families(_scrape(client))

    account = {
        "account_id": str(dep_account.pk),
        "server_name": "Springfield MDM",
        "org_name": "Springfield Schools",
    }
    key = tuple(sorted(account.items()))
    expiry = families["mdmportal_dep_token_expiry_timestamp_seconds"]
    assert expiry.type == "gauge"
    assert "expires" in expiry.documentation
    assert _samples(expiry) == {key: dep_account.token_expires_at.timestamp()}
    assert _samples(families["mdmportal_dep_token_days_left"]) == {key: dep_account.days_left()}
    sync_key = (("account_id", str(dep_account.pk)), ("server_name", "Springfield MDM"))
    assert _samples(families["mdmportal_dep_account_state"]) == {
        (*sync_key, ("state", state)): float(state == State.OK) for state in State.values
    }
    assert _samples(families["mdmportal_dep_last_sync_timestamp_seconds"]) == {
        sync_key: dep_account.last_sync_at.timestamp()
    }
    assert _samples(families["mdmportal_dep_last_sync_success"]) == {sync_key: 0.0}
    assert _samples(families["mdmportal_licence_expiry_timestamp_seconds"]) == {
        (
            ("customer", "Springfield Schools"),
            ("licence_id", licence.licence_id),
            ("plan", "Education"),
        ): licence.valid_until.timestamp()
    }


def test_every_account_has_one_series_per_state_and_exactly_one_is_1(client, db):
    DEPAccount.objects.create(server_name="Awaiting")
    DEPAccount.objects.create(
        server_name="Rejected",
        state=State.REJECTED,
        token_expires_at=timezone.now() + timedelta(days=90),
    )

    states = _families(_scrape(client))["mdmportal_dep_account_state"].samples

    assert len(states) == 2 * len(State.values)
    on = {(s.labels["server_name"], s.labels["state"]) for s in states if s.value == 1}
    assert on == {("Awaiting", State.AWAITING_TOKEN), ("Rejected", State.REJECTED)}
    families = _families(_scrape(client))
    # An account without a token has no expiry, and one never synced no sync result.
    assert len(families["mdmportal_dep_token_expiry_timestamp_seconds"].samples) == 1
    assert families["mdmportal_dep_last_sync_success"].samples == []


def test_label_values_are_escaped_so_the_parser_reads_them_back(client, db):
    awkward = 'Spring"field\\ MDM\nsecond line'
    DEPAccount.objects.create(
        server_name=awkward,
        org_name="Springfield, “Schools”",
        token_expires_at=timezone.now() + timedelta(days=10),
    )

    response = _scrape(client)

    assert '\\"' in response.content.decode() and "\\n" in response.content.decode()
    sample = _families(response)["mdmportal_dep_token_days_left"].samples[0]
    assert sample.labels["server_name"] == awkward
    assert sample.labels["org_name"] == "Springfield, “Schools”"


def test_a_scrape_costs_the_same_queries_for_one_and_many_accounts(client, db):
    DEPAccount.objects.create(server_name="One")
    with CaptureQueriesContext(connection) as one:
        _scrape(client)
    for n in range(20):
        DEPAccount.objects.create(
            server_name=f"Server {n}", token_expires_at=timezone.now() + timedelta(days=n)
        )
    with CaptureQueriesContext(connection) as many:
        _scrape(client)

    # The accounts, the licence and the push certificate.
    assert len(one) == len(many) == 3


def test_metrics_need_the_bearer_token(client, admin):
    url = reverse("metrics")
    assert client.get(url).status_code == 401
    assert _scrape(client, token="wrong").status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    # A signed-in admin is no scraper either.
    client.force_login(admin)
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_metrics_do_not_exist_without_a_metrics_token(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get(reverse("metrics")).status_code == 404
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_the_push_certificate_has_its_expiry_under_the_apns_kind(client, push_portal, admin):
    first = push_portal.first_certificate(admin)
    families = _families(_scrape(client))
    labels = (("apple_id", push_portal.apple_id), ("kind", "apns"), ("name", first.topic))
    expiry = _samples(families["mdmportal_credential_expiry_timestamp_seconds"])
    assert expiry == {labels: first.expires_at.timestamp()}
    assert _samples(families["mdmportal_credential_days_left"])[labels] in (364, 365)
