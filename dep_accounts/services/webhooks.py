"""Outgoing webhooks: events POSTed as JSON, signed with HMAC-SHA256, retried with backoff.

Each event becomes one WebhookDelivery per active webhook subscribed to it; the delivery's
unique (webhook, event_key) makes an event that happens twice (a retried task, a second beat
process) go out once. A delivery is claimed by moving its next attempt past the time one send
can take, so two workers never send the same delivery at once.

The receiver checks `X-Mdmportal-Signature: sha256=<hex>`, the HMAC-SHA256 under the webhook's
secret of "<X-Mdmportal-Timestamp>.<body>", and may refuse old timestamps against replays.
Payloads carry names, dates and states, never a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

import urllib3
from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from kombu.exceptions import OperationalError as BrokerUnreachableError

from dep_accounts.encryption import SecretDecryptionError, secret_decrypt, secret_encrypt
from dep_accounts.links import portal_url
from dep_accounts.models import (
    AuditEvent,
    DEPAccount,
    ServerToken,
    Webhook,
    WebhookDelivery,
    calendar_days_until,
)
from dep_accounts.selectors import licence_current
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.webhook_transport import ReceiverRefusedError, receiver_post
from dep_accounts.users import User
from mdmportal.celery import AfterCommitTask

logger = logging.getLogger(__name__)

Event = Webhook.Event
Status = WebhookDelivery.Status

TIMEOUT_SECONDS = 5
# Wait after the 1st, 2nd, 3rd and 4th failed attempt; the 5th failure gives up.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=60),
)
# A claimed delivery is due again after this, should its worker die mid-send.
CLAIM_LEASE = timedelta(seconds=4 * TIMEOUT_SECONDS)
DUE_BATCH = 100


def webhook_signature(*, secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Mdmportal-Signature header value for a body sent at `timestamp`."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@sensitive_variables("secret")
def webhook_create(*, url: str, events: Iterable[str], actor: User | None) -> tuple[Webhook, str]:
    """A new active webhook and its signing secret, which is returned here and never again."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook.objects.create(
        url=url,
        secret_encrypted=secret_encrypt(secret.encode()),
        events=sorted(set(events)),
        is_active=True,
        created_by=actor_user(actor),
    )
    audit_record(
        action=AuditEvent.Action.WEBHOOK_CHANGED,
        message=f"Added a webhook to {webhook.url_shown} for {', '.join(webhook.events)}.",
        actor=actor,
    )
    return webhook, secret


def webhook_active_set(*, webhook: Webhook, is_active: bool, actor: User | None) -> Webhook:
    """Pause or resume a webhook; a paused one gets no new events and sends none it has."""
    Webhook.objects.filter(pk=webhook.pk).update(is_active=is_active)
    webhook.is_active = is_active
    audit_record(
        action=AuditEvent.Action.WEBHOOK_CHANGED,
        message=f"{'Resumed' if is_active else 'Paused'} the webhook to {webhook.url_shown}.",
        actor=actor,
    )
    return webhook


def webhook_delete(*, webhook: Webhook, actor: User | None) -> None:
    webhook.delete()
    audit_record(
        action=AuditEvent.Action.WEBHOOK_CHANGED,
        message=f"Deleted the webhook to {webhook.url_shown} and its delivery log.",
        actor=actor,
    )


def webhooks_emit(*, event: str, event_key: str, payload: dict) -> int:
    """Queue the event for each active webhook subscribed to it, once per event key."""
    webhooks = [w for w in Webhook.objects.filter(is_active=True) if event in w.events]
    created: list[int] = []
    for webhook in webhooks:
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    webhook=webhook, event=event, event_key=event_key[:200], payload=payload
                )
        except IntegrityError:
            continue
        created.append(delivery.pk)
    if created:
        transaction.on_commit(lambda: _deliveries_queue(created))
    return len(created)


def _deliveries_queue(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            webhook_delivery_send_task.delay(delivery_id)
        except BrokerUnreachableError as exc:
            # Still due: the beat task sends it within a minute of the broker answering again.
            logger.warning("Webhook delivery %s not queued: %s", delivery_id, exc)


def _account_payload(*, event: str, account: DEPAccount, message: str, now: datetime) -> dict:
    expires_at = account.token_expires_at
    return {
        "event": event,
        "occurred_at": now.isoformat(),
        "message": message,
        "account": {
            "id": account.pk,
            "name": account.name,
            "server_name": account.server_name,
            "org_name": account.org_name,
            "state": account.state,
            "token_expires_at": expires_at.isoformat() if expires_at else None,
            "days_left": account.days_left(now),
            "url": portal_url(reverse("dep_accounts:edit", args=[account.pk])),
        },
    }


def webhooks_emit_reminder(
    *, account: DEPAccount, token: ServerToken, days_before: int, message: str, now: datetime
) -> int:
    """A renewal reminder threshold was reached (once per token and threshold)."""
    event = Event.REMINDER
    payload = _account_payload(event=event, account=account, message=message, now=now)
    payload["reminder_days_before"] = days_before
    return webhooks_emit(
        event=event, event_key=f"{event}:{token.pk}:{days_before}", payload=payload
    )


def webhooks_emit_account_state(*, account: DEPAccount) -> int:
    """Apple rejected the account's token, or wants its terms accepted; other states send none."""
    now = timezone.now()
    if account.state == DEPAccount.State.REJECTED:
        # A token Apple rejected stays rejected: once per token.
        token_id = (
            ServerToken.objects.filter(account=account, is_current=True)
            .values_list("pk", flat=True)
            .first()
        )
        event, event_key = Event.TOKEN_REJECTED, f"{Event.TOKEN_REJECTED}:{account.pk}:{token_id}"
    elif account.state == DEPAccount.State.TERMS_NOT_ACCEPTED:
        # New terms can come again after the last were accepted: at most once a day.
        event = Event.TERMS_NOT_ACCEPTED
        event_key = f"{event}:{account.pk}:{timezone.localdate(now).isoformat()}"
    else:
        return 0
    message = f"{account.name}: {account.get_state_display()}. {account.state_detail}".strip()
    payload = _account_payload(event=event, account=account, message=message, now=now)
    return webhooks_emit(event=event, event_key=event_key, payload=payload)


def webhooks_emit_sync_failed(*, account: DEPAccount, message: str, failed_at: datetime) -> int:
    """A sync of the account failed."""
    event = Event.SYNC_FAILED
    payload = _account_payload(
        event=event,
        account=account,
        message=f"Sync of {account.name} failed: {message}",
        now=failed_at,
    )
    return webhooks_emit(
        event=event,
        event_key=f"{event}:{account.pk}:{failed_at.isoformat()}",
        payload=payload,
    )


def webhooks_emit_licence_expiring(*, now: datetime | None = None) -> int:
    """The current licence ends within the warning period: at most once a week."""
    now = now or timezone.now()
    licence = licence_current()
    warning = now + timedelta(days=settings.DEP_TOKEN_WARNING_DAYS)
    if licence is None or not now < licence.valid_until <= warning:
        return 0
    event = Event.LICENCE_EXPIRING
    year, week, _ = timezone.localdate(now).isocalendar()
    days_left = calendar_days_until(licence.valid_until, now=now)
    payload = {
        "event": event,
        "occurred_at": now.isoformat(),
        "message": f"The {licence.plan} subscription licence for {licence.customer} expires on "
        f"{licence.valid_until:%-d %b %Y}.",
        "licence": {
            "id": licence.licence_id,
            "customer": licence.customer,
            "plan": licence.plan,
            "expires_at": licence.valid_until.isoformat(),
            "days_left": days_left,
            "url": portal_url(reverse("dep_accounts:subscription")),
        },
    }
    return webhooks_emit(
        event=event,
        event_key=f"{event}:{licence.licence_id}:{year}-W{week:02d}",
        payload=payload,
    )


def _deliveries_claim(*, pk: int | None = None) -> list[WebhookDelivery]:
    """Due deliveries no other worker holds, each made due again only after CLAIM_LEASE."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        status=Status.PENDING, next_attempt_at__lte=now, webhook__is_active=True
    )
    if pk is not None:
        due = due.filter(pk=pk)
    # Rows locked by another worker's claim are skipped (PostgreSQL); SQLite runs the whole
    # transaction alone (IMMEDIATE), so the second claim finds them no longer due.
    with transaction.atomic():
        claimed = list(
            due.select_for_update(
                skip_locked=connection.features.has_select_for_update_skip_locked, of=("self",)
            )
            .select_related("webhook")
            .order_by("next_attempt_at", "id")[:DUE_BATCH]
        )
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            next_attempt_at=now + CLAIM_LEASE
        )
    return claimed


@sensitive_variables("secret", "headers")
def _post(delivery: WebhookDelivery, *, now: datetime) -> tuple[int | None, str]:
    """POST the delivery once: the receiver's status, and why it failed ("" if it did not)."""
    webhook = delivery.webhook
    try:
        secret = secret_decrypt(webhook.secret_encrypted)
    except SecretDecryptionError:
        return None, (
            "The webhook's secret cannot be decrypted: SECRETS_ENCRYPTION_KEYS lacks the key it "
            "was encrypted with. Put that key back, or delete the webhook and add it again."
        )
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "mdmportal-webhooks",
        "X-Mdmportal-Event": delivery.event,
        "X-Mdmportal-Delivery": str(delivery.pk),
        "X-Mdmportal-Timestamp": timestamp,
        "X-Mdmportal-Signature": webhook_signature(secret=secret, timestamp=timestamp, body=body),
    }
    try:
        answer = receiver_post(url=webhook.url, body=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except ReceiverRefusedError as exc:
        return None, exc.message
    except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ProtocolError):
        # Before TimeoutError: urllib3's NewConnectionError is a kind of ConnectTimeoutError.
        return None, "Could not connect to the receiver."
    except urllib3.exceptions.TimeoutError:
        return None, f"No answer within {TIMEOUT_SECONDS} seconds."
    except urllib3.exceptions.HTTPError as exc:
        return None, f"The request failed ({type(exc).__name__})."
    if 200 <= answer.status < 300:
        return answer.status, ""
    return answer.status, f"The receiver answered HTTP {answer.status}."


def _delivery_send(delivery: WebhookDelivery) -> bool:
    status_code, error = _post(delivery, now=timezone.now())
    attempts = delivery.attempts + 1
    result: dict = {"attempts": attempts, "response_status": status_code, "last_error": error}
    if not error:
        result |= {"status": Status.DELIVERED, "delivered_at": timezone.now()}
    elif attempts > len(BACKOFF):
        result |= {"status": Status.FAILED}
        logger.warning("Webhook delivery %s gave up after %s attempts", delivery.pk, attempts)
    else:
        result |= {"next_attempt_at": timezone.now() + BACKOFF[attempts - 1]}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**result)
    return not error


def webhook_delivery_send(*, delivery_id: int) -> bool:
    """Send one delivery if it is due and no other worker holds it; whether it was delivered."""
    return sum(_delivery_send(d) for d in _deliveries_claim(pk=delivery_id)) == 1


def webhook_deliveries_send_due() -> int:
    """Send every delivery whose (next) attempt is due; return how many were delivered."""
    return sum(_delivery_send(delivery) for delivery in _deliveries_claim())


@shared_task(base=AfterCommitTask)
def webhook_delivery_send_task(delivery_id: int) -> None:
    """Send a new webhook delivery at once; the beat task retries it if this fails."""
    webhook_delivery_send(delivery_id=delivery_id)
