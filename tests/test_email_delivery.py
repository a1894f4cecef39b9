"""Email as in production: a real SMTP server on 127.0.0.1 (STARTTLS, AUTH) and its faults.

Every fault case ends with every other notification delivered and nothing delivered twice.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from dep_accounts.models import AuditEvent, OutboundEmail, ServerToken
from dep_accounts.selectors import banner_items
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.outbox import email_deliver, emails_queue, emails_send_due, subject_line
from dep_accounts.services.reminders import reminders_send
from dep_accounts.services.sync import devices_sync
from tests.mailserver import PASSWORD, USERNAME, MailServer, SilentServer
from tests.processes import free_port, manage, portal_env

Status = OutboundEmail.Status
RECIPIENTS = ["alex@springfield.example", "ops@springfield.example", "root@springfield.example"]


def _smtp_settings(settings, port: int, *, password: str = PASSWORD, timeout: int = 2) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = True, False
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = USERNAME, password
    settings.EMAIL_TIMEOUT = timeout


@pytest.fixture
def mail_server(tmp_path, settings, monkeypatch):
    server = MailServer(tmp_path)
    # The client trusts the test's certificate as it would trust a real CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    _smtp_settings(settings, server.port)
    yield server
    server.stop()


def _notify(*recipients: str, key: str = "reminder:1:7") -> list[OutboundEmail]:
    return emails_queue(
        kind=OutboundEmail.Kind.REMINDER,
        notification_key=key,
        recipients=recipients,
        subject="DEP server token of Springfield MDM expires in 7 days",
        body="Renew it.\n",
    )


def _deliver_due(*, minutes_later: float = 0) -> list[str | None]:
    now = timezone.now() + timedelta(minutes=minutes_later)
    pending = OutboundEmail.objects.exclude(status__in=[Status.SENT, Status.FAILED])
    return [email_deliver(email_id=pk, now=now) for pk in pending.values_list("pk", flat=True)]


def _statuses() -> dict[str, str]:
    return dict(OutboundEmail.objects.values_list("recipient", "status"))


def _each_received_once(server: MailServer, recipients: list[str]) -> None:
    assert sorted(r for rcpts, _ in server.received for r in rcpts) == sorted(recipients)


def test_a_reminder_reaches_each_recipient_over_starttls_with_auth(mail_server, dep_account, admin):
    admin.email = "alex@springfield.example"
    admin.save()
    dep_account.display_name = "Springfield\nMDM\r\nBcc: victim@evil.example"
    dep_account.notification_emails = "ops@springfield.example"
    dep_account.save()
    # Mid-morning, so that 7 days and 3 hours never cross a midnight: 7 calendar days.
    now = timezone.now().replace(hour=9, minute=0)
    ServerToken.objects.filter(account=dep_account).update(
        access_token_expiry=now + timedelta(days=7, hours=3)
    )

    assert reminders_send(now=now) == 1
    assert mail_server.received == []  # queued in the transaction, sent by the outbox's task
    assert _deliver_due() == [Status.SENT, Status.SENT]

    _each_received_once(mail_server, ["alex@springfield.example", "ops@springfield.example"])
    message = mail_server.messages_to("ops@springfield.example")[0]
    assert message["Subject"] == (
        "DEP server token of Springfield MDM Bcc: victim@evil.example expires in 7 days"
    )
    assert "\n" not in message["Subject"] and message["Bcc"] is None
    assert message["To"] == "ops@springfield.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert f"/admin/apple-dep/dep-accounts/{dep_account.pk}/edit/" in message.get_content()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EMAIL_SENT).count() == 2
    assert _deliver_due(minutes_later=90) == []


def test_a_refused_connection_is_retried_then_delivered_once(mail_server, settings, db):
    settings.EMAIL_PORT = free_port()  # nothing listens there
    _notify(*RECIPIENTS)
    assert _deliver_due() == [Status.RETRYING] * 3
    assert {e.last_answer for e in OutboundEmail.objects.all()} == {
        "Could not connect to the mail server (Connection refused)."
    }

    settings.EMAIL_PORT = mail_server.port
    assert _deliver_due() == [None] * 3  # not due before the backoff
    assert _deliver_due(minutes_later=2) == [Status.SENT] * 3
    _each_received_once(mail_server, RECIPIENTS)


def test_a_mail_server_that_never_greets_holds_a_send_only_for_the_timeout(
    mail_server, settings, db
):
    silent = SilentServer()
    settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = silent.port, 1
    (email,) = _notify("alex@springfield.example")
    started = time.monotonic()
    assert email_deliver(email_id=email.pk) == Status.RETRYING
    assert time.monotonic() - started < 5
    email.refresh_from_db()
    assert "did not answer within 1 seconds" in email.last_answer
    silent.stop()

    settings.EMAIL_PORT = mail_server.port
    assert _deliver_due(minutes_later=2) == [Status.SENT]
    _each_received_once(mail_server, ["alex@springfield.example"])


def test_421_and_451_are_retried_with_backoff_then_delivered(mail_server, db):
    mail_server.faults.data = ["421 4.3.2 Service shutting down", "451 4.3.0 Try again later"]
    (email,) = _notify("alex@springfield.example")
    assert _deliver_due() == [Status.RETRYING]
    email.refresh_from_db()
    assert email.last_answer == "421 4.3.2 Service shutting down"
    assert _deliver_due(minutes_later=2) == [Status.RETRYING]
    email.refresh_from_db()
    assert (email.attempts, email.last_answer) == (2, "451 4.3.0 Try again later")
    _notify("ops@springfield.example", key="reminder:2:7")
    assert _deliver_due(minutes_later=10) == [Status.SENT, Status.SENT]
    _each_received_once(mail_server, ["alex@springfield.example", "ops@springfield.example"])


def test_550_for_one_recipient_fails_it_alone_and_the_banner_says_so(mail_server, licence):
    mail_server.faults.recipients["ops@springfield.example"] = "550 5.1.1 No such user here"
    _notify(*RECIPIENTS)
    _deliver_due()
    assert _statuses() == {
        "alex@springfield.example": Status.SENT,
        "ops@springfield.example": Status.FAILED,
        "root@springfield.example": Status.SENT,
    }
    _each_received_once(mail_server, ["alex@springfield.example", "root@springfield.example"])
    failed = OutboundEmail.objects.get(status=Status.FAILED)
    assert failed.last_answer == "550 5.1.1 No such user here"
    assert AuditEvent.objects.get(action=AuditEvent.Action.EMAIL_FAILED).message.endswith(
        "not delivered to ops@springfield.example: 550 5.1.1 No such user here"
    )
    (item,) = banner_items()
    assert item["text"] == ("Renewal reminders could not be emailed: 550 5.1.1 No such user here")
    assert _deliver_due(minutes_later=600) == []  # a permanent failure is not retried

    # The next notification that goes out clears the banner.
    with pytest.MonkeyPatch.context() as later:
        later.setattr(timezone, "now", lambda: failed.created_at + timedelta(minutes=5))
        _notify("ops@springfield.example", key="reminder:1:3")
    mail_server.faults.recipients.clear()
    _deliver_due(minutes_later=6)
    banner_refresh()
    assert banner_items() == []


def test_554_for_the_message_fails_it_with_the_servers_answer(mail_server, db):
    mail_server.faults.data = ["554 5.7.1 Message rejected as spam"]
    _notify("alex@springfield.example")
    _notify("ops@springfield.example", key="reminder:2:7")
    assert sorted(_deliver_due(), key=str) == [Status.FAILED, Status.SENT]
    assert OutboundEmail.objects.get(status=Status.FAILED).last_answer == (
        "554 5.7.1 Message rejected as spam"
    )
    assert len(mail_server.received) == 1


def test_a_server_without_starttls_is_refused_when_tls_is_required(tmp_path, settings, db):
    plain = MailServer(tmp_path, tls=False)
    try:
        _smtp_settings(settings, plain.port)
        _notify("alex@springfield.example")
        assert _deliver_due() == [Status.FAILED]
        assert "does not offer STARTTLS" in OutboundEmail.objects.get().last_answer
        assert plain.received == []  # nothing goes out in clear text
    finally:
        plain.stop()


def test_bad_credentials_fail_with_the_servers_answer(mail_server, settings, licence):
    settings.EMAIL_HOST_PASSWORD = "not the password"
    _notify("alex@springfield.example")
    assert _deliver_due() == [Status.FAILED]
    assert OutboundEmail.objects.get().last_answer.startswith("535 ")
    assert mail_server.received == []
    assert banner_items()[0]["text"].startswith("Renewal reminders could not be emailed: 535")


def test_a_worker_killed_between_send_and_mark_never_sends_again(tmp_path, monkeypatch):
    """A real process is killed by the mail server the moment it has the message."""
    server = MailServer(tmp_path)
    env = portal_env(
        DEBUG="true",
        MDMPORTAL_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        EMAIL_URL=f"smtp+tls://{USERNAME}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{server.port}",
        EMAIL_TIMEOUT="2",
        SSL_CERT_FILE=str(server.ca_file),
    )
    try:
        manage(env, "migrate", "--noinput")
        manage(
            env,
            "shell",
            "--no-imports",
            "-c",
            "from dep_accounts.models import OutboundEmail as E\n"
            "for r in ['alex@x.example', 'ops@x.example', 'root@x.example']:\n"
            "    E.objects.create(kind='reminder', notification_key='k', recipient=r,"
            " subject='s', body='b')",
        )
        pid_file = tmp_path / "sender.pid"
        server.faults.on_message = lambda _message: os.kill(
            int(pid_file.read_text()), signal.SIGKILL
        )
        sender = (
            "import os, pathlib\n"
            f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
            "from dep_accounts.services.outbox import email_deliver\n"
            "email_deliver(email_id=1)\n"
        )
        with pytest.raises(AssertionError, match="exited with -9"):
            manage(env, "shell", "--no-imports", "-c", sender)
        assert [r for rcpts, _ in server.received for r in rcpts] == ["alex@x.example"]
        server.faults.on_message = None

        reconcile = (
            "from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from dep_accounts.models import OutboundEmail as E\n"
            "from dep_accounts.services.outbox import email_deliver, emails_reconcile\n"
            "print(emails_reconcile(now=timezone.now() + timedelta(minutes=10)))\n"
            "for pk in range(1, 4):\n"
            "    email_deliver(email_id=pk)\n"
            "print(sorted(E.objects.values_list('recipient', 'status')))\n"
        )
        output = manage(env, "shell", "--no-imports", "-c", reconcile)
        assert output.splitlines() == [
            "1",
            "[('alex@x.example', 'uncertain'), ('ops@x.example', 'sent'), "
            "('root@x.example', 'sent')]",
        ]
        _each_received_once(server, ["alex@x.example", "ops@x.example", "root@x.example"])
    finally:
        server.stop()


def test_a_hung_mail_server_delays_no_sync_expiry_refresh_or_banner(
    transactional_db, settings, dep_account, licence
):
    """While a send waits out its timeout, the other work runs: no transaction is held."""
    silent = SilentServer()
    _smtp_settings(settings, silent.port, timeout=3)
    (email,) = _notify("alex@springfield.example")
    sending = threading.Thread(
        target=lambda: (email_deliver(email_id=email.pk), connections.close_all())
    )
    try:
        sending.start()
        assert silent.connected.wait(timeout=5)  # connected, waiting for the greeting
        assert OutboundEmail.objects.get().status == Status.SENDING
        started = time.monotonic()
        token_states_refresh()
        banner_refresh()
        outcome = devices_sync(account=dep_account)
        elapsed = time.monotonic() - started
        assert sending.is_alive(), "the other work finished only after the send gave up"
        assert outcome.result == "ok", outcome.message
        assert elapsed < 3
    finally:
        sending.join(timeout=10)
        silent.stop()
    assert OutboundEmail.objects.get().status == Status.RETRYING


def test_the_beat_task_queues_due_emails_and_reconciles_interrupted_ones(db):
    (email,) = _notify("alex@springfield.example")
    OutboundEmail.objects.filter(pk=email.pk).update(
        status=Status.SENDING, attempt_started_at=timezone.now() - timedelta(hours=1)
    )
    _notify("ops@springfield.example", key="reminder:2:7")
    assert emails_send_due() == 1
    email.refresh_from_db()
    assert email.status == Status.UNCERTAIN
    assert "may have been delivered" in email.last_answer


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Token of A\nB expires", "Token of A B expires"),
        ("a\r\n\tb\x00c\x1b[31m", "a b c [31m"),
        ("x" * 300, "x" * 199 + "…"),
    ],
)
def test_subjects_are_always_one_line(text, line):
    assert subject_line(text) == line


def test_admins_are_emailed_weekly_while_the_licence_nears_its_end(mail_server, admin):
    from django.conf import settings

    from dep_accounts.services.licence import licence_document_issue, licence_install
    from dep_accounts.services.reminders import licence_reminders_send

    admin.email = "alex@springfield.example"
    admin.save()
    # Mid-morning, so that 20 days and 2 hours never cross a midnight: 20 calendar days.
    now = timezone.now().replace(hour=9, minute=0)
    document = licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer="Springfield Schools",
        plan="Education",
        device_limit=1000,
        valid_from=now - timedelta(days=345),
        valid_until=now + timedelta(days=20, hours=2),
    )
    licence_install(document=document, actor=None)
    assert licence_reminders_send(now=now) == 1
    assert licence_reminders_send(now=now) == 0  # once a week
    assert _deliver_due() == [Status.SENT]
    (message,) = mail_server.messages_to("alex@springfield.example")
    assert message["Subject"] == (
        "The mdmportal subscription licence of Springfield Schools expires in 20 days"
    )
    assert "/admin/subscription/" in message.get_content()
    assert licence_reminders_send(now=now + timedelta(days=7)) == 1
