""" "I have accepted the terms in ABM: check now": one call to Apple (applesim over a socket), and
the banner clears at once when Apple agrees."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.selectors import banner_items
from dep_accounts.services.sync import devices_sync

pytestmark = pytest.mark.django_db

State = DEPAccount.State
BUTTON = "I have accepted the terms in ABM: check now"


def _check_url(account: DEPAccount) -> str:
    return reverse("dep_accounts:terms_check", args=[account.pk])


@pytest.fixture
def terms_not_accepted(abm, dep_account, licence):
    """Apple has new terms: a sync finds out, and the account and banner say so."""
    abm.sim.control.terms_set(abm.org_id, False)
    devices_sync(account=dep_account)
    dep_account.refresh_from_db()
    assert dep_account.state == State.TERMS_NOT_ACCEPTED
    assert len(banner_items()) == 1
    return dep_account


def test_apple_still_reporting_the_terms_keeps_the_state_and_says_so(
    client_as, admin, terms_not_accepted
):
    account = terms_not_accepted
    client = client_as(admin)
    assert BUTTON in client.get(account.get_absolute_url()).content.decode()
    response = client.post(_check_url(account), follow=True)
    assert "Apple still reports the terms as not accepted" in response.content.decode()
    account.refresh_from_db()
    assert account.state == State.TERMS_NOT_ACCEPTED
    assert len(banner_items()) == 1
    event = AuditEvent.objects.filter(account=account).first()
    assert (event.actor, event.outcome) == (admin, AuditEvent.Outcome.FAILURE)
    assert "still not accepted" in event.message


def test_once_the_terms_are_accepted_the_check_clears_the_state_and_banner(
    abm, client_as, admin, terms_not_accepted
):
    account = terms_not_accepted
    abm.sim.control.terms_set(abm.org_id, True)
    response = client_as(admin).post(_check_url(account), follow=True)
    page = response.content.decode()
    assert "Apple agrees: the terms are accepted" in page
    assert BUTTON not in page
    account.refresh_from_db()
    assert (account.state, account.state_detail) == (State.OK, "")
    assert banner_items() == []
    event = AuditEvent.objects.filter(account=account, actor=admin).first()
    assert event.outcome == AuditEvent.Outcome.SUCCESS


def test_the_check_is_offered_only_when_apple_reports_the_terms(client_as, admin, dep_account):
    client = client_as(admin)
    assert BUTTON not in client.get(dep_account.get_absolute_url()).content.decode()
    response = client.post(_check_url(dep_account), follow=True)
    assert "there is nothing to check" in response.content.decode()
    dep_account.refresh_from_db()
    assert dep_account.state == State.OK


def test_only_admins_check_the_terms(client, client_as, viewer, terms_not_accepted):
    account = terms_not_accepted
    response = client.post(_check_url(account))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert client_as(viewer).post(_check_url(account)).status_code == 403
    assert client_as(viewer).get(_check_url(account)).status_code == 403
    assert BUTTON not in client_as(viewer).get(account.get_absolute_url()).content.decode()
    account.refresh_from_db()
    assert account.state == State.TERMS_NOT_ACCEPTED
