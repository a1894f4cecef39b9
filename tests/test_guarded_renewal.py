"""Guarded renewal: "Start renewal", then the old token is watched with Apple (applesim over a
socket) until the new file is uploaded; once Apple rejects it, a critical banner and one email."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.selectors import banner_items
from dep_accounts.services.intake import TokenFile, token_intake
from dep_accounts.services.renewal.watch import guarded_renewals_check
from dep_accounts.tasks import guarded_renewals_watch
from tests import accessible

pytestmark = pytest.mark.django_db

State = DEPAccount.State


def _start_url(account: DEPAccount) -> str:
    return reverse("dep_accounts:start_renewal", args=[account.pk])


def _renewal_started(client_as, admin, account: DEPAccount) -> DEPAccount:
    response = client_as(admin).post(_start_url(account), follow=True)
    assert response.status_code == 200
    account.refresh_from_db()
    return account


def test_start_renewal_records_who_and_when_and_tells_the_abm_steps(client_as, admin, dep_account):
    client = client_as(admin)
    page = client.get(dep_account.get_absolute_url()).content.decode()
    assert "Start renewal" in page
    response = client.post(_start_url(dep_account), follow=True)
    page = response.content.decode()
    assert "Download Token" in page
    assert "checks the old token every 5 minutes" in page
    assert "Renewal started by alex.admin" in page
    assert not accessible.find_all(accessible.page(response), "button", "Start renewal")
    dep_account.refresh_from_db()
    assert dep_account.renewal_started_by == admin
    assert dep_account.renewal_started_at is not None
    assert dep_account.old_token_rejected_at is None
    event = AuditEvent.objects.filter(account=dep_account).first()
    assert event.actor == admin
    assert "Renewal of" in event.message


def test_the_old_token_is_checked_until_apple_rejects_it_then_banner_and_one_email(
    abm, client_as, admin, dep_account, licence, emails_flush
):
    admin.email = "alex@springfield.example"
    admin.save()
    dep_account.notification_emails = "ops@springfield.example"
    dep_account.save()
    account = _renewal_started(client_as, admin, dep_account)

    # Apple still accepts the old token: nothing happens but the check time.
    assert guarded_renewals_check() == 0
    account.refresh_from_db()
    assert account.renewal_checked_at is not None
    assert account.state == State.OK
    assert mail.outbox == []

    new_token = abm.token_for(account)  # Download Token in ABM resets the old token.
    guarded_renewals_watch()
    account.refresh_from_db()
    assert account.state == State.REJECTED
    assert account.old_token_rejected_at is not None
    assert emails_flush() == 2
    assert sorted(m.to[0] for m in mail.outbox) == [
        "alex@springfield.example",
        "ops@springfield.example",
    ]
    message = mail.outbox[0]
    assert "was reset less than a minute ago: upload the new file now" in message.body
    assert f"/admin/apple-dep/dep-accounts/{account.pk}/edit/" in message.body
    (item,) = banner_items()
    assert item["level"] == "critical"
    assert item["text"] == (
        f"The old server token of “{account.name}” was reset less than a minute ago: "
        "upload the new file now."
    )

    # Later runs send nothing more, and keep the banner's "N minutes ago" current.
    with time_machine.travel(timezone.now() + timedelta(minutes=17)):
        assert guarded_renewals_check() == 0
        assert "was reset 17 minutes ago" in banner_items()[0]["text"]
    assert emails_flush() == 0
    assert len(mail.outbox) == 2
    page = client_as(admin).get(account.get_absolute_url()).content.decode()
    assert "Apple rejected the old token" in page

    token_intake(account=account, upload=TokenFile("new.p7m", new_token), actor=admin)
    account.refresh_from_db()
    assert account.state == State.OK
    assert (account.renewal_started_at, account.renewal_started_by) == (None, None)
    assert (account.renewal_checked_at, account.old_token_rejected_at) == (None, None)
    assert banner_items() == []
    assert AuditEvent.objects.filter(
        account=account, action=AuditEvent.Action.REMINDER_SENT
    ).exists()


def test_uploading_the_new_token_before_apple_is_asked_ends_the_guard(
    abm, client_as, admin, dep_account, emails_flush
):
    account = _renewal_started(client_as, admin, dep_account)
    token_intake(
        account=account, upload=TokenFile("smime.p7m", abm.token_for(account)), actor=admin
    )
    account.refresh_from_db()
    assert account.renewal_started_at is None
    assert guarded_renewals_check() == 0
    assert emails_flush() == 0
    assert mail.outbox == []


def test_guarding_stops_after_a_day_without_upload(client_as, admin, dep_account):
    account = _renewal_started(client_as, admin, dep_account)
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        assert guarded_renewals_check() == 0
    account.refresh_from_db()
    assert account.renewal_started_at is None
    assert account.state == State.OK
    event = AuditEvent.objects.filter(account=account).first()
    assert "Stopped watching the old token" in event.message
    assert event.outcome == AuditEvent.Outcome.FAILURE


def test_a_renewal_cannot_be_guarded_when_apple_already_rejects_the_token(
    client_as, admin, dep_account
):
    DEPAccount.objects.filter(pk=dep_account.pk).update(state=State.REJECTED)
    page = client_as(admin).get(dep_account.get_absolute_url()).content.decode()
    assert "Start renewal" not in page
    response = client_as(admin).post(_start_url(dep_account), follow=True)
    assert "already unusable" in response.content.decode()
    dep_account.refresh_from_db()
    assert dep_account.renewal_started_at is None


def test_only_admins_start_a_renewal(client, client_as, viewer, dep_account):
    response = client.post(_start_url(dep_account))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert client_as(viewer).post(_start_url(dep_account)).status_code == 403
    page = client_as(viewer).get(dep_account.get_absolute_url()).content.decode()
    assert "Start renewal" not in page
    assert client_as(viewer).get(_start_url(dep_account)).status_code == 403
    dep_account.refresh_from_db()
    assert dep_account.renewal_started_at is None


def test_the_guard_runs_every_five_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["dep-guarded-renewals"]
    assert entry["task"] == "dep_accounts.tasks.guarded_renewals_watch"
    assert entry["schedule"] == 300.0
