"""Concurrency and a lost broker: two uploads of one token at once, two beat processes sending
reminders at once, two sync dispatchers at once, and Redis going away and coming back under a
running web process.

The races run in threads, each with its own database connection, on the test database (SQLite);
`test_the_races_hold_on_postgres_too` runs them again on PostgreSQL, in a pytest of its own.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
import redis
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models import AuditEvent, DEPAccount, ReminderSent, ServerToken
from dep_accounts.selectors import banner_items
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import token_check, token_take
from dep_accounts.services.reminders import reminders_send
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.sync_requests import accounts_due_for_sync, syncs_dispatch
from dep_accounts.services.verdict import Intent
from tests.processes import BASE_DIR, free_port, portal_env, wait_until

POSTGRES = "postgres://postgres@127.0.0.1:5432"
RACE_TESTS = "test_two_uploads or test_two_beat or test_two_dispatchers"
# Set for the pytest of its own that runs the races on the embedded default's SQLite file.
SQLITE_FILE = os.environ.get("MDMPORTAL_RACE_SQLITE_FILE", "")
RACE_RUN = bool(SQLITE_FILE) or os.environ.get("DATABASE_URL", "").startswith("postgres")

if SQLITE_FILE:

    @pytest.fixture(scope="session")
    def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
        """A SQLite file, as the embedded default has (WAL, busy timeout), not one in memory."""
        from django.conf import settings

        settings.DATABASES["default"]["TEST"]["NAME"] = SQLITE_FILE


@pytest.fixture
def concurrent_database(transactional_db) -> None:
    """Racers need a database that takes writers from several connections."""
    from django.db import connection

    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "SQLite in memory locks racing writers out instead of queuing them; the races run "
            "on a SQLite file and on PostgreSQL in pytests of their own."
        )


def _race(*work: Callable[[], object]) -> list[object]:
    """Run each callable in its own thread, all released at once; their results, in order."""
    barrier = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)
    crashes: list[BaseException] = []

    def run(index: int, job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = job()
        except BaseException as exc:
            crashes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer never finished"
    if crashes:
        raise crashes[0]
    return results


def _admin_client(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_two_uploads_of_one_token_at_once_renew_it_once(
    concurrent_database, dep_account, abm, admin
):
    account = dep_account
    previous = account.server_tokens.get(is_current=True)
    renewal = abm.token_for(account)
    url = reverse("dep_accounts:edit", args=[account.pk])
    clients = [_admin_client(admin), _admin_client(admin)]

    def upload(client: Client):
        token_file = SimpleUploadedFile("smime.p7m", renewal, content_type="application/pkcs7-mime")
        settings = {"auto_sync": "on", "sync_interval_minutes": 60}
        return client.post(url, {**settings, "token_file": token_file})

    responses = _race(*(lambda c=client: upload(c) for client in clients))

    assert sorted(r.status_code for r in responses) == [200, 302]
    loser = next(r for r in responses if r.status_code == 200)
    assert "This is the token already in use" in loser.content.decode()
    tokens = list(account.server_tokens.order_by("uploaded_at", "pk"))
    assert tokens[0].pk == previous.pk
    assert [t.is_current for t in tokens] == [False, True]
    assert tokens[0].replaced_at == tokens[1].uploaded_at
    account.refresh_from_db()
    assert account.token_expires_at == tokens[1].access_token_expiry
    events = AuditEvent.objects.filter(account=account).exclude(
        action=AuditEvent.Action.ACCOUNT_CREATED
    )
    assert sorted(events.values_list("action", "outcome")) == [
        (AuditEvent.Action.TOKEN_REJECTED, AuditEvent.Outcome.FAILURE),
        (AuditEvent.Action.TOKEN_RENEWED, AuditEvent.Outcome.SUCCESS),
    ]
    assert events.get(action=AuditEvent.Action.TOKEN_REJECTED).details["reason"] == "older_token"


def test_two_uploads_of_a_first_token_at_once_add_the_account_once(concurrent_database, abm, admin):
    account = account_create(actor=admin)
    check = token_check(account=account, token_file=abm.token_for(account))

    def add():
        try:
            return token_take(
                account=account, check=check, actor=admin, file_name="a.p7m", intent=Intent.ADD
            ).account
        except Exception as exc:
            return exc

    outcomes = _race(add, add)

    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1
    assert getattr(errors[0], "code", "") == "concurrent_upload"
    assert "already received its token in another upload" in errors[0].message
    assert ServerToken.objects.filter(account=account).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_CREATED).count() == 1


def test_two_beat_processes_send_each_reminder_once(concurrent_database, abm, admin, emails_flush):
    admin.email = "alex.admin@springfield.example"
    admin.save()
    account = account_create(actor=admin)
    token_file = abm.token_for(account, validity_days=31)
    account = token_take(
        account=account,
        check=token_check(account=account, token_file=token_file),
        actor=admin,
        intent=Intent.ADD,
    ).account
    expires = account.server_tokens.get().access_token_expiry
    mail.outbox.clear()

    for days_before in [30, 14, 7, 3, 1, 0]:
        now = expires - timedelta(days=days_before, hours=1)
        sent = _race(lambda n=now: reminders_send(now=n), lambda n=now: reminders_send(now=n))
        assert sorted(sent) == [0, 1], days_before
        # And a retry of either beat process later that day sends nothing more.
        assert reminders_send(now=now + timedelta(minutes=30)) == 0

    assert emails_flush() == 6
    assert len(mail.outbox) == 6
    assert [m.to for m in mail.outbox] == [[admin.email]] * 6
    assert sorted(ReminderSent.objects.values_list("days_before", flat=True)) == [
        0,
        1,
        3,
        7,
        14,
        30,
    ]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REMINDER_SENT).count() == 6


def test_two_dispatchers_at_once_queue_one_sync_per_due_account(
    concurrent_database, broker, dep_account, abm, admin, licence
):
    second = account_create(actor=admin)
    token_take(
        account=second,
        check=token_check(
            account=second,
            token_file=abm.token_for(second, server_uuid=abm.server_add("Shelbyville MDM")),
        ),
        actor=admin,
        intent=Intent.ADD,
    )
    due = sorted([dep_account.pk, second.pk])

    # Two workers starting together, each dispatching at its start.
    queued = _race(syncs_dispatch, syncs_dispatch)

    assert sorted(queued[0] + queued[1]) == due
    assert broker.syncs_queued() == due
    # The beat's dispatch a minute later, while those syncs still wait in the queue.
    assert syncs_dispatch(now=timezone.now() + timedelta(minutes=1)) == []
    assert broker.syncs_queued() == due


def _postgres_reachable() -> None:
    try:
        psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is needed ({exc}). `.ci/run` starts it.")


@pytest.mark.skipif(RACE_RUN, reason="this is one of those runs")
@pytest.mark.parametrize("database", ["sqlite file", "postgres"])
def test_the_races_hold_on_the_embedded_and_the_production_database(database, tmp_path):
    """WAL and IMMEDIATE transactions on SQLite, select_for_update and the unique constraints
    on PostgreSQL, serialize the racers: the races run again there, in a pytest of their own."""
    if database == "postgres":
        _postgres_reachable()
        env = {"DATABASE_URL": f"{POSTGRES}/mdmportal_races_{secrets.token_hex(4)}"}
    else:
        env = {"MDMPORTAL_RACE_SQLITE_FILE": str(tmp_path / "races.sqlite3")}
    command = [sys.executable, "-m", "pytest", __file__, "-p", "no:cacheprovider", "-k", RACE_TESTS]
    completed = subprocess.run(
        command,
        env=portal_env(MDMPORTAL_VAR_DIR=str(tmp_path), **env),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "4 passed" in completed.stdout, completed.stdout


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    running = RedisBroker(free_port())
    running.start()
    from mdmportal.celery import app

    previous = app.conf.broker_url
    _broker_use(app, running.url)
    try:
        yield running
    finally:
        running.stop()
        _broker_use(app, previous)


class RedisBroker:
    """A Redis of this test's own, on its own port, to stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=10, what=f"Redis on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
        except redis.ConnectionError:
            return False

    def queued(self) -> int:
        return redis.Redis.from_url(self.url).llen("celery")

    def syncs_queued(self) -> list[int]:
        """The account of each sync waiting in the queue, sorted, repeats kept."""
        messages = redis.Redis.from_url(self.url).lrange("celery", 0, -1)
        headers = [json.loads(message)["headers"] for message in messages]
        return sorted(
            int(header["argsrepr"].strip("(),"))
            for header in headers
            if header["task"] == "dep_accounts.services.sync.account_sync"
        )


def _broker_use(app, url: str) -> None:
    """Point the Celery app at another broker: it builds its connection pool once, so drop it."""
    app.conf.broker_url = url
    # Celery's own way to forget its pooled connections (as after a fork).
    app._after_fork()


@pytest.fixture
def expiring_account(abm, admin, licence):
    """An account whose token expires in 20 days: the banner warns about it."""
    account = account_create(actor=admin)
    token_file = abm.token_for(account, validity_days=20)
    check = token_check(account=account, token_file=token_file)
    return token_take(account=account, check=check, actor=admin, intent=Intent.ADD).account


GET_PAGES = [
    ("dep_accounts:dashboard", False),
    ("dep_accounts:list", False),
    ("dep_accounts:add", False),
    ("dep_accounts:detail", True),
    ("dep_accounts:edit", True),
    ("dep_accounts:public_key", True),
    ("dep_accounts:devices", False),
    ("dep_accounts:profiles", False),
    ("dep_accounts:profile_add", False),
    ("dep_accounts:subscription", False),
    ("dep_accounts:audit_log", False),
]


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_pages_render_and_sync_now_says_why_then_work_resumes(
    broker, expiring_account, admin
):
    account = expiring_account
    DEPAccount.objects.filter(pk=account.pk).update(last_sync_at=timezone.now())
    client = _admin_client(admin)
    sync_url = reverse("dep_accounts:sync", args=[account.pk])
    response = client.post(sync_url, follow=True)
    assert "Sync of “Springfield MDM” requested" in response.content.decode()
    assert broker.queued() == 1

    (banner,) = banner_items()
    assert "“Springfield MDM” expires in" in banner["text"]

    broker.stop()
    for name, takes_account in GET_PAGES:
        response = client.get(reverse(name, args=[account.pk] if takes_account else []))
        assert response.status_code == 200, name
        if response["Content-Type"].startswith("text/html"):
            assert html.escape(banner["text"]) in response.content.decode(), name
    response = client.post(sync_url, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The background worker queue is unreachable" in page
    assert "as soon as the queue is back" in page
    failure = AuditEvent.objects.filter(account=account).latest("at", "pk")
    assert (failure.action, failure.outcome) == (AuditEvent.Action.SYNC, AuditEvent.Outcome.FAILURE)
    assert "queue is unreachable" in failure.message
    # Synced a minute ago, and not due for an hour: the dispatcher takes it as soon as it runs.
    assert account.pk in accounts_due_for_sync()

    broker.start()
    from dep_accounts import tasks

    tasks.syncs_dispatch_due()
    assert broker.queued() == 1
    response = client.post(sync_url, follow=True)
    assert "Sync of “Springfield MDM” requested" in response.content.decode()
    assert broker.queued() == 2


@pytest.mark.django_db(transaction=True)
def test_a_queued_sync_is_queued_again_only_once_it_has_run_or_its_mark_has_lapsed(
    broker, dep_account, licence, settings
):
    account = dep_account
    now = timezone.now()
    assert syncs_dispatch(now=now) == [account.pk]
    assert syncs_dispatch(now=now + timedelta(minutes=5)) == []
    assert broker.syncs_queued() == [account.pk]

    # The broker lost the message: once the mark lapses, the dispatcher queues it again.
    lapsed = now + timedelta(seconds=settings.DEP_SYNC_QUEUED_SECONDS + 1)
    assert syncs_dispatch(now=lapsed) == [account.pk]
    assert broker.syncs_queued() == [account.pk, account.pk]

    # The sync runs: the mark is gone, and the account is due again after its interval only.
    assert devices_sync(account=account).result == DEPAccount.SyncResult.OK
    account.refresh_from_db()
    assert account.sync_queued_until is None
    assert syncs_dispatch() == []
    assert syncs_dispatch(now=timezone.now() + timedelta(minutes=61)) == [account.pk]


@pytest.mark.django_db(transaction=True)
def test_no_sync_is_queued_for_an_account_whose_sync_is_running(broker, dep_account, licence):
    DEPAccount.objects.filter(pk=dep_account.pk).update(
        sync_lock_until=timezone.now() + timedelta(minutes=2)
    )
    assert syncs_dispatch() == []
    assert syncs_dispatch(now=timezone.now() + timedelta(minutes=3)) == [dep_account.pk]
    assert broker.syncs_queued() == [dep_account.pk]
