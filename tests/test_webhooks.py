"""Outgoing webhooks, the way a receiver sees them: a local HTTP server that checks every
signature with the webhook's secret, for each event, through retries and repeats."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
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
    host: str


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


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings) -> None:
    """The receivers here listen on loopback, which webhooks may reach only when allowed."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


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
                        host=self.headers["Host"],
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


@pytest.fixture
def connections(monkeypatch) -> list[tuple]:
    """Every socket connect attempted: a refused receiver must be refused before any."""
    attempted: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        attempted.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempted


@pytest.fixture
def resolver(monkeypatch) -> dict[str, list[str]]:
    """A DNS where the test says what each name resolves to; other names resolve as usual."""
    names: dict[str, list[str]] = {}
    asked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            asked.append(host)
            addresses = names[host] if len(names[host]) == 1 else [names[host].pop(0)]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port, 0, 0) if ":" in a else (a, port),
                )
                for a in addresses
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    names["__asked__"] = asked
    return names


def _delivery_to(url: str) -> WebhookDelivery:
    webhook, _ = webhook_create(url=url, events=["sync.failed"], actor=None)
    webhooks_emit(event="sync.failed", event_key="refusal", payload={"event": "sync.failed"})
    webhook_deliveries_send_due()
    return WebhookDelivery.objects.get(webhook=webhook)


NOT_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.20",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.251",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_receiver_at_a_non_public_address_is_refused_before_any_connection(
    address, settings, resolver, connections
):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    resolver["hooks.springfield.example"] = [address]
    delivery = _delivery_to("http://hooks.springfield.example:6379/hook")
    assert connections == []
    assert delivery.status == Status.PENDING
    assert delivery.response_status is None
    assert "hooks.springfield.example resolves to" in delivery.last_error
    assert "WEBHOOK_ALLOWED_NETWORKS" in delivery.last_error


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379/", "http://[::ffff:127.0.0.1]:6379/", "http://localhost:6379/"]
)
def test_a_loopback_url_is_refused_whatever_its_spelling(url, settings, connections):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    delivery = _delivery_to(url)
    assert connections == []
    assert "a loopback address" in delivery.last_error


def test_a_name_with_one_private_address_among_public_ones_is_refused(
    settings, monkeypatch, connections
):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.8", port)),
        ],
    )
    delivery = _delivery_to("https://hooks.springfield.example/hook")
    assert connections == []
    assert "10.0.0.8, a private address" in delivery.last_error


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::248", "8.8.8.8"])
def test_public_addresses_are_allowed_without_any_setting(address, settings, resolver):
    from dep_accounts.services.webhook_transport import receiver_address

    settings.WEBHOOK_ALLOWED_NETWORKS = []
    resolver["hooks.springfield.example"] = [address]
    # Checked only: nothing is sent outside this machine.
    assert str(receiver_address("hooks.springfield.example", 443)) == address


def test_an_allowed_network_lets_its_receivers_through(settings, resolver):
    from dep_accounts.services.webhook_transport import ReceiverRefusedError, receiver_address

    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    resolver["lan.springfield.example"] = ["10.20.3.4"]
    resolver["other.springfield.example"] = ["10.21.0.1"]
    assert str(receiver_address("lan.springfield.example", 80)) == "10.20.3.4"
    with pytest.raises(ReceiverRefusedError):
        receiver_address("other.springfield.example", 80)


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(
    receiver, resolver, committed
):
    """A rebinding DNS answers the check with an allowed address and a later lookup with a
    forbidden one: the later lookup never happens, the checked address is the one connected."""
    port = receiver.url.split(":")[2].split("/")[0]
    resolver["hooks.springfield.example"] = ["127.0.0.1", "10.0.0.1"]
    receiver.url = f"http://hooks.springfield.example:{port}/hooks/mdm"
    webhook = _subscribe(receiver, events=["sync.failed"])
    with committed():
        webhooks_emit(event="sync.failed", event_key="pinned", payload={"event": "sync.failed"})
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert delivery.status == Status.DELIVERED, delivery.last_error
    assert [r.host for r in receiver.received] == [f"hooks.springfield.example:{port}"]
    assert resolver["__asked__"] == ["hooks.springfield.example"]


def test_credentials_in_a_webhook_url_are_refused_and_never_shown(
    client_as, admin, receiver, connections
):
    page = reverse("dep_accounts:webhooks")
    with_password = receiver.url.replace("http://", "http://hook-user:s3cret-pass@")
    response = client_as(admin).post(page, {"url": with_password, "events": ["sync.failed"]})
    assert response.status_code == 200
    assert (
        "Take the user name and password out of the URL"
        in response.context["form"].errors["url"][0]
    )
    assert not Webhook.objects.exists()
    # One stored before they were refused is neither sent nor shown.
    delivery = _delivery_to(with_password)
    assert connections == []
    assert "holds a user name or password" in delivery.last_error
    assert receiver.received == []
    listing = client_as(admin).get(page).content.decode()
    assert receiver.url in listing
    assert "s3cret-pass" not in listing
    assert "hook-user" not in listing


def test_a_webhook_whose_secret_cannot_be_decrypted_fails_alone_with_a_message(
    receiver, settings, committed
):
    from cryptography.fernet import Fernet

    from dep_accounts.encryption import secret_encrypt

    lost = _subscribe(receiver, events=["sync.failed"])
    working = _subscribe(receiver, events=["sync.failed"])
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    Webhook.objects.filter(pk=lost.pk).update(secret_encrypted=secret_encrypt(b"whsec_lost"))
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    Webhook.objects.filter(pk=working.pk).update(
        secret_encrypted=secret_encrypt(receiver.secrets[1].encode())
    )
    with committed():
        webhooks_emit(event="sync.failed", event_key="keys", payload={"event": "sync.failed"})
    failed = WebhookDelivery.objects.get(webhook=lost)
    assert failed.status == Status.PENDING
    assert "secret cannot be decrypted" in failed.last_error
    assert WebhookDelivery.objects.get(webhook=working).status == Status.DELIVERED
    assert len(receiver.received) == 1
