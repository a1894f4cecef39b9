"""Expiry states, the banner and renewal reminders, with time moved by time-machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dep_accounts.encryption import secret_encrypt
from dep_accounts.models import AuditEvent, DEPAccount, ReminderSent, ServerToken
from dep_accounts.selectors import banner_items
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.reminders import reminders_send

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
State = DEPAccount.State


def _account(name: str, expires_in: timedelta | None, state: str = State.OK, **fields):
    expires_at = NOW + expires_in if expires_in is not None else None
    account = DEPAccount.objects.create(
        server_name=name,
        server_uuid=name.upper().replace(" ", "")[:32],
        org_name="Springfield Schools",
        token_expires_at=expires_at,
        state=state if expires_at else State.AWAITING_TOKEN,
        **fields,
    )
    if expires_at:
        ServerToken.objects.create(
            account=account,
            secrets_encrypted=secret_encrypt(b"{}"),
            access_token_expiry=expires_at,
            consumer_key_fingerprint="SHA256:00",
            server_uuid=account.server_uuid,
            admin_apple_id="it.admin@springfield.example",
        )
    return account


@time_machine.travel(NOW, tick=False)
def test_states_follow_the_thresholds():
    accounts = {
        "fine": _account("fine", timedelta(days=90)),
        "warning": _account("warning", timedelta(days=30)),
        "critical": _account("critical", timedelta(days=7)),
        "expired": _account("expired", timedelta(seconds=-1)),
        "awaiting": _account("awaiting", None),
    }

    token_states_refresh()

    states = {name: DEPAccount.objects.get(pk=a.pk).state for name, a in accounts.items()}
    assert states == {
        "fine": State.OK,
        "warning": State.WARNING,
        "critical": State.CRITICAL,
        "expired": State.EXPIRED,
        "awaiting": State.AWAITING_TOKEN,
    }


@time_machine.travel(NOW, tick=False)
def test_apples_verdict_stays_until_the_token_expires():
    rejected = _account("rejected", timedelta(days=100), state=State.REJECTED)
    terms = _account("terms", timedelta(days=5), state=State.TERMS_NOT_ACCEPTED)
    gone = _account("gone", timedelta(days=-2), state=State.REJECTED)

    token_states_refresh()

    assert DEPAccount.objects.get(pk=rejected.pk).state == State.REJECTED
    assert DEPAccount.objects.get(pk=terms.pk).state == State.TERMS_NOT_ACCEPTED
    assert DEPAccount.objects.get(pk=gone.pk).state == State.EXPIRED


def test_the_expiry_refresh_costs_the_same_queries_for_3_and_300_accounts():
    def queries_for(count: int) -> int:
        DEPAccount.objects.all().delete()
        DEPAccount.objects.bulk_create(
            DEPAccount(
                server_name=f"s{i}",
                server_uuid=f"{count}-{i}",
                token_expires_at=NOW + timedelta(days=i % 60 - 5),
                state=State.OK,
            )
            for i in range(count)
        )
        banner_refresh()
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as ctx:
            token_states_refresh()
            banner_refresh()
        return len(ctx)

    assert queries_for(3) == queries_for(300)


def test_the_expiry_refresh_writes_only_the_accounts_the_clock_moved():
    fine = _account("fine", timedelta(days=90))
    nearly = _account("nearly", timedelta(days=30, minutes=30))
    _account("rejected", timedelta(days=3), state=State.REJECTED)
    DEPAccount.objects.filter(pk=fine.pk).update(state=State.WARNING)

    with time_machine.travel(NOW, tick=False):
        assert token_states_refresh() == 1  # the stale one
        assert token_states_refresh() == 0
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert token_states_refresh() == 1
    assert DEPAccount.objects.get(pk=fine.pk).state == State.OK
    assert DEPAccount.objects.get(pk=nearly.pk).state == State.WARNING
    with time_machine.travel(NOW + timedelta(days=4), tick=False):
        assert token_states_refresh() == 1  # the rejected token expired
    assert DEPAccount.objects.filter(state=State.EXPIRED).count() == 1


def test_an_hour_with_no_new_reminder_costs_the_same_queries_for_3_and_300_tokens():
    def queries_for(count: int) -> int:
        DEPAccount.objects.all().delete()
        for i in range(count):
            _account(f"s{count}-{i}", timedelta(days=i % 30 + 1))
        reminders_send(now=NOW)
        with CaptureQueriesContext(connection) as ctx:
            assert reminders_send(now=NOW + timedelta(minutes=30)) == 0
        return len(ctx)

    assert queries_for(3) == queries_for(300)


@time_machine.travel(NOW, tick=False)
def test_the_banner_lists_every_problem_most_urgent_first():
    _account("Later", timedelta(days=20))
    _account("Soon", timedelta(days=3))
    _account("Gone", timedelta(days=-1))
    _account("Reset", timedelta(days=200), state=State.REJECTED)
    _account("Terms", timedelta(days=200), state=State.TERMS_NOT_ACCEPTED)
    _account("Fine", timedelta(days=200))
    token_states_refresh()

    banner_refresh()

    texts = [item["text"] for item in banner_items()]
    order = [
        next(n for n in ("Reset", "Gone", "Terms", "Soon", "Later") if n in t) for t in texts[:5]
    ]
    assert order == ["Reset", "Gone", "Terms", "Soon", "Later"]
    assert not any("Fine" in t for t in texts)
    assert "in 3 days" in texts[3]
    assert "No subscription licence" in texts[5]


def test_reading_the_banner_costs_one_query(django_assert_max_num_queries):
    banner_refresh()
    with django_assert_max_num_queries(1):
        banner_items()


@pytest.mark.parametrize(
    ("days_before", "step"), [(30, 30), (20, 30), (14, 14), (7, 7), (5, 7), (3, 3), (1, 1), (0, 0)]
)
def test_a_reminder_goes_out_once_at_each_step(days_before, step, django_user_model, emails_flush):
    expiry = datetime(2027, 3, 10, 15, 0, tzinfo=UTC)
    with time_machine.travel(expiry - timedelta(days=400), tick=False):
        account = _account(
            "Springfield MDM", timedelta(days=400), notification_emails="ops@x.example"
        )
        ServerToken.objects.filter(account=account).update(access_token_expiry=expiry)
    django_user_model.objects.create_superuser("root", "root@x.example", "pw-long-enough-42")

    with time_machine.travel(expiry - timedelta(days=days_before, hours=1), tick=False):
        assert reminders_send() == 1
        assert reminders_send() == 0

    assert ReminderSent.objects.get().days_before == step
    assert mail.outbox == []  # queued: the outbox sends it after commit
    assert emails_flush() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["ops@x.example", "root@x.example"]
    message = mail.outbox[0]
    assert "Springfield MDM" in message.subject
    assert f"/admin/apple-dep/dep-accounts/{account.pk}/edit/" in message.body
    assert "Download Token" in message.body


@pytest.mark.parametrize(
    ("days_before", "named"), [(10, "10 days left"), (1, "1 day left"), (0, "expires today")]
)
def test_a_reminder_for_an_account_first_seen_late_names_the_days_actually_left(
    days_before, named, django_user_model, emails_flush
):
    django_user_model.objects.create_superuser("root", "root@x.example", "pw-long-enough-42")
    with time_machine.travel(NOW, tick=False):
        _account("Springfield MDM", timedelta(days=days_before, hours=1))
        reminders_send()

    event = AuditEvent.objects.get(action=AuditEvent.Action.REMINDER_SENT)
    assert event.message == (
        f"Renewal reminder ({named}) for “Springfield MDM” queued for 1 recipient."
    )
    assert "days before expiry" not in event.message
    assert emails_flush() == 1
    assert "(s)" not in mail.outbox[0].subject


def test_no_reminder_before_thirty_days_or_after_expiry(django_user_model, emails_flush):
    django_user_model.objects.create_superuser("root", "root@x.example", "pw-long-enough-42")
    with time_machine.travel(NOW, tick=False):
        _account("Far", timedelta(days=45))
        _account("Past", timedelta(days=-3))
        assert reminders_send() == 0
    assert emails_flush() == 0
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("now", "days_left", "text"),
    [
        (datetime(2026, 12, 1, 23, 59, 30, tzinfo=UTC), 1, "tomorrow"),
        (datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC), 0, "today"),
        (datetime(2026, 12, 2, 0, 0, 29, tzinfo=UTC), 0, "today"),
    ],
)
def test_days_left_count_calendar_days_across_midnight(now, days_left, text):
    account = DEPAccount.objects.create(
        server_name="Midnight MDM",
        server_uuid="MIDNIGHT",
        token_expires_at=datetime(2026, 12, 2, 0, 0, 30, tzinfo=UTC),
        state=State.OK,
    )
    with time_machine.travel(now, tick=False):
        token_states_refresh()
        banner_refresh()
        assert account.days_left() == days_left
        assert DEPAccount.objects.get(pk=account.pk).state == State.CRITICAL
        assert f"expires {text}" in banner_items()[0]["text"]


def test_a_token_turns_expired_the_second_it_expires():
    expiry = datetime(2026, 12, 2, 0, 0, 30, tzinfo=UTC)
    account = DEPAccount.objects.create(
        server_name="Midnight MDM", server_uuid="MIDNIGHT", token_expires_at=expiry, state=State.OK
    )
    with time_machine.travel(expiry - timedelta(seconds=1), tick=False):
        token_states_refresh()
        assert DEPAccount.objects.get(pk=account.pk).state == State.CRITICAL
    with time_machine.travel(expiry, tick=False):
        token_states_refresh()
        assert DEPAccount.objects.get(pk=account.pk).state == State.EXPIRED


@time_machine.travel(NOW, tick=False)
def test_past_five_accounts_the_banner_counts_the_rest_in_one_line():
    for n in range(8):
        _account(f"Soon {n}", timedelta(days=10 + n))
    _account("Reset", timedelta(days=200), state=State.REJECTED)
    token_states_refresh()

    banner_refresh()

    items = banner_items()
    assert [i["text"].split("“")[1].split("”")[0] for i in items[:5]] == [
        "Reset",
        "Soon 0",
        "Soon 1",
        "Soon 2",
        "Soon 3",
    ]
    assert items[5]["text"].startswith("4 more DEP accounts need attention")
    assert items[5]["url"] == "/admin/apple-dep/dep-accounts/"
    assert items[5]["level"] == "warning"
