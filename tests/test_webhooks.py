"""Outgoing webhooks, the way a receiver sees them: a local HTTP server that checks every
signature with the webhook's secret, for each event, through retries and repeats."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from dep_accounts import tasks
from dep_accounts.models import DEPAccount, Webhook, WebhookDelivery
from dep_accounts.services.licence import licence_document_issue, licence_install
from dep_accounts.services.reminders import reminders_send
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.webhooks import (
    BACKOFF,
    webhook_create,
    webhook_deliveries_send_due,
    webhooks_emit,
)
from mdmportal.celery import app as celery_app

pytestmark = pytest.mark.django_db

Status = WebhookDelivery.Status


@dataclass
class Received:
    event: str
    delivery: str
    timestamp: str
    content_type: str
    payload: dict


@dataclass
class Receiver:
    """A webhook receiver: answers `answers` in turn (then 200), 401 on a bad signature."""

    url: str
    secrets: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    refused: int = 0

    def verify(self, headers, body: bytes) -> bool:
        signed = headers["X-Mdmportal-Timestamp"].encode() + b"." + body
        given = headers["X-Mdmportal-Signature"]
        return any(
            hmac.compare_digest(
                given, "sha256=" + hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()
            )
            for s in self.secrets
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rx = state["receiver"]
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not rx.verify(self.headers, body):
                rx.refused += 1
                status = 401
            else:
                rx.received.append(
                    Received(
                        event=self.headers["X-Mdmportal-Event"],
                        delivery=self.headers["X-Mdmportal-Delivery"],
                        timestamp=self.headers["X-Mdmportal-Timestamp"],
                        content_type=self.headers["Content-Type"],
                        payload=json.loads(body),
                    )
                )
                status = rx.answers.pop(0) if rx.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks/mdm")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def committed(monkeypatch, django_capture_on_commit_callbacks):
    """A block whose transaction commits, then runs the tasks it queued as a worker would."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _subscribe(receiver: Receiver, events=tuple(Webhook.Event.values)) -> Webhook:
    webhook, secret = webhook_create(url=receiver.url, events=events, actor=None)
    receiver.secrets.append(secret)
    return webhook


def test_an_admin_adds_a_webhook_and_sees_its_secret_once(client_as, admin, receiver):
    client = client_as(admin)
    response = client.post(
        reverse("dep_accounts:webhooks"),
        {"url": receiver.url, "events": ["token.rejected", "sync.failed"]},
    )

    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    webhook = Webhook.objects.get()
    assert webhook.events == ["sync.failed", "token.rejected"]
    assert webhook.is_active
    assert secret.encode() not in bytes(webhook.secret_encrypted)
    assert secret not in client.get(reverse("dep_accounts:webhooks")).content.decode()


def test_a_webhook_needs_an_http_url_and_an_event(client_as, admin):
    response = client_as(admin).post(
        reverse("dep_accounts:webhooks"), {"url": "ftp://files.example/hook", "events": []}
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"url", "events"}
    assert not Webhook.objects.exists()


def test_a_rejected_token_sends_token_rejected_and_sync_failed_signed(
    abm, dep_account, licence, receiver, committed
):
    _subscribe(receiver)
    abm.token_for(dep_account)  # a new download in ABM resets the portal's token

    with committed():
        devices_sync(account=dep_account)

    assert receiver.refused == 0
    assert [r.event for r in receiver.received] == ["token.rejected", "sync.failed"]
    rejected = receiver.received[0]
    assert rejected.content_type == "application/json"
    assert abs(int(rejected.timestamp) - timezone.now().timestamp()) < 60
    delivery = WebhookDelivery.objects.get(pk=int(rejected.delivery))
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        Status.DELIVERED,
        1,
        200,
    )
    account = rejected.payload["account"]
    assert rejected.payload["event"] == "token.rejected"
    assert account["id"] == dep_account.pk
    assert account["server_name"] == "Springfield MDM"
    assert account["org_name"] == "Springfield Schools"
    assert account["state"] == DEPAccount.State.REJECTED
    assert account["days_left"] in (364, 365)
    assert account["url"] == settings.PORTAL_BASE_URL.rstrip("/") + reverse(
        "dep_accounts:edit", args=[dep_account.pk]
    )


def test_terms_not_accepted_sends_its_event(abm, dep_account, licence, receiver, committed):
    _subscribe(receiver, events=["terms.not_accepted"])
    abm.sim.control.terms_set(abm.org_id, False)

    with committed():
        devices_sync(account=dep_account)

    assert [r.event for r in receiver.received] == ["terms.not_accepted"]
    assert "Terms not accepted" in receiver.received[0].payload["message"]


def test_each_reminder_threshold_sends_one_reminder_event(
    dep_account, receiver, committed, mailoutbox
):
    _subscribe(receiver, events=["token.reminder"])
    DEPAccount.objects.filter(pk=dep_account.pk).update(notification_emails="ops@x.example")
    expiry = dep_account.token_expires_at

    with time_machine.travel(expiry - timedelta(days=6, hours=1)), committed():
        assert reminders_send() == 1
        assert reminders_send() == 0
    with time_machine.travel(expiry - timedelta(days=2, hours=1)), committed():
        assert reminders_send() == 1

    assert len(mailoutbox) == 2
    payloads = [r.payload for r in receiver.received]
    assert [p["reminder_days_before"] for p in payloads] == [7, 3]
    assert [p["account"]["days_left"] for p in payloads] == [6, 2]
    assert payloads[0]["message"] == mailoutbox[0].subject


def test_a_licence_expiring_within_thirty_days_is_announced_once_a_week(db, receiver, committed):
    _subscribe(receiver, events=["licence.expiring"])
    now = timezone.now()
    licence = licence_install(
        document=licence_document_issue(
            signing_key=settings.LICENCE_SIGNING_KEY,
            customer="Springfield Schools",
            plan="Education",
            device_limit=100,
            valid_from=now - timedelta(days=300),
            valid_until=now + timedelta(days=20),
        ),
        actor=None,
    )

    with committed():
        tasks.token_expiry_refresh()
        tasks.token_expiry_refresh()
    with time_machine.travel(now + timedelta(days=7)), committed():
        tasks.token_expiry_refresh()

    assert [r.event for r in receiver.received] == ["licence.expiring"] * 2
    announced = receiver.received[0].payload["licence"]
    assert announced["id"] == licence.licence_id
    assert announced["days_left"] == 20
    assert announced["url"].endswith(reverse("dep_accounts:subscription"))
    assert "document" not in json.dumps(receiver.received[0].payload)


def test_an_event_key_goes_out_once_however_often_it_happens(receiver, committed):
    _subscribe(receiver)
    payload = {"event": "sync.failed", "message": "Apple is down"}

    with committed():
        first = webhooks_emit(event="sync.failed", event_key="sync.failed:1:t", payload=payload)
        again = webhooks_emit(event="sync.failed", event_key="sync.failed:1:t", payload=payload)

    assert (first, again) == (1, 0)
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.count() == 1


def test_only_active_webhooks_subscribed_to_the_event_get_it(receiver):
    wanted = _subscribe(receiver, events=["sync.failed"])
    _subscribe(receiver, events=["token.rejected"])
    paused = _subscribe(receiver, events=["sync.failed"])
    Webhook.objects.filter(pk=paused.pk).update(is_active=False)

    sent = webhooks_emit(event="sync.failed", event_key="k", payload={"event": "sync.failed"})

    assert sent == 1
    assert list(WebhookDelivery.objects.values_list("webhook", flat=True)) == [wanted.pk]


def test_a_failed_delivery_is_retried_after_the_backoff(receiver, committed):
    _subscribe(receiver)
    receiver.answers = [500]
    start = timezone.now()

    with time_machine.travel(start, tick=False), committed():
        webhooks_emit(event="sync.failed", event_key="k", payload={"event": "sync.failed"})
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        Status.PENDING,
        1,
        500,
    )
    assert delivery.last_error == "The receiver answered HTTP 500."
    assert delivery.next_attempt_at == start + BACKOFF[0]

    with time_machine.travel(start + BACKOFF[0] - timedelta(seconds=1)):
        assert webhook_deliveries_send_due() == 0
    with time_machine.travel(start + BACKOFF[0] + timedelta(seconds=1)):
        tasks.webhook_deliveries_send_due()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        Status.DELIVERED,
        2,
        200,
    )
    assert delivery.last_error == ""
    assert [r.delivery for r in receiver.received] == [str(delivery.pk)] * 2


def test_a_receiver_that_keeps_failing_is_given_up_after_five_attempts(receiver, committed):
    _subscribe(receiver)
    receiver.answers = [503] * 10
    moment = timezone.now()
    with time_machine.travel(moment, tick=False), committed():
        webhooks_emit(event="sync.failed", event_key="k", payload={"event": "sync.failed"})

    for wait in BACKOFF:
        delivery = WebhookDelivery.objects.get()
        assert delivery.next_attempt_at == moment + wait
        moment += wait
        with time_machine.travel(moment, tick=False):
            webhook_deliveries_send_due()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (Status.FAILED, 5)
    with time_machine.travel(moment + timedelta(days=1)):
        assert webhook_deliveries_send_due() == 0
    assert len(receiver.received) == 5


def test_a_delivery_held_by_one_worker_is_not_sent_by_another(receiver, committed):
    from dep_accounts.services.webhooks import _deliveries_claim

    _subscribe(receiver)
    receiver.answers = [500]
    with committed():
        webhooks_emit(event="sync.failed", event_key="k", payload={"event": "sync.failed"})
    due = WebhookDelivery.objects.get().next_attempt_at

    with time_machine.travel(due + timedelta(seconds=1), tick=False):
        held = _deliveries_claim()
        assert webhook_deliveries_send_due() == 0

    assert len(held) == 1
    assert len(receiver.received) == 1


def test_an_unreachable_receiver_is_logged_and_retried(db, committed):
    webhook_create(url="http://127.0.0.1:9/nothing-listens", events=["sync.failed"], actor=None)

    with committed():
        webhooks_emit(event="sync.failed", event_key="k", payload={"event": "sync.failed"})

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        Status.PENDING,
        1,
        None,
    )
    assert delivery.last_error == "Could not connect to the receiver."


def test_the_delivery_log_shows_each_delivery_to_admins(client_as, admin, receiver, committed):
    _subscribe(receiver)
    receiver.answers = [502]
    with committed():
        webhooks_emit(event="sync.failed", event_key="k1", payload={"event": "sync.failed"})
        webhooks_emit(event="token.rejected", event_key="k2", payload={"event": "token.rejected"})

    page = client_as(admin).get(reverse("dep_accounts:webhooks")).content.decode()

    assert "sync.failed" in page and "token.rejected" in page
    assert "The receiver answered HTTP 502." in page
    assert "Delivered" in page and "Pending" in page


def test_the_webhooks_page_is_for_admins_only(client, viewer, nobody):
    url = reverse("dep_accounts:webhooks")
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    for user in (viewer, nobody):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert (
            client.post(url, {"url": "https://x.example", "events": ["sync.failed"]}).status_code
            == 403
        )
    assert not Webhook.objects.exists()


def test_an_admin_pauses_resumes_and_deletes_a_webhook(client_as, admin, viewer, receiver):
    webhook = _subscribe(receiver)
    client = client_as(admin)
    change = reverse("dep_accounts:webhook_change")

    client.post(change, {"webhook": webhook.pk, "action": "pause"})
    webhook.refresh_from_db()
    assert not webhook.is_active
    client.post(change, {"webhook": webhook.pk, "action": "resume"})
    webhook.refresh_from_db()
    assert webhook.is_active

    client_as(viewer)
    assert client.post(change, {"webhook": webhook.pk, "action": "delete"}).status_code == 403
    client_as(admin)
    response = client.post(change, {"webhook": webhook.pk, "action": "delete"})
    assert response.status_code == 302
    assert not Webhook.objects.exists()


def test_a_reminder_event_goes_out_even_when_nobody_has_an_email_address(
    dep_account, receiver, committed, mailoutbox, django_user_model
):
    _subscribe(receiver, events=["token.reminder"])
    django_user_model.objects.filter(is_superuser=True).update(email="")
    django_user_model.objects.update(email="")
    expiry = dep_account.token_expires_at

    with time_machine.travel(expiry - timedelta(days=6, hours=1)), committed():
        assert reminders_send() == 1
        assert reminders_send() == 0

    assert mailoutbox == []
    assert [r.event for r in receiver.received] == ["token.reminder"]
