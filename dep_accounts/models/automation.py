"""What scripts and other systems use: API tokens, calendar feeds and webhooks.

Keys and feed URLs are kept as their SHA-256 only; webhook secrets only encrypted.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class APIToken(models.Model):
    """A user's key to the JSON API; only its SHA-256 is kept, the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"API token {self.key_prefix}… of {self.user}"


class CalendarFeed(models.Model):
    """A user's subscribable calendar of token expiries; only the URL secret's SHA-256 is kept."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Calendar feed of {self.user}"


class Webhook(models.Model):
    """An outgoing webhook: events POSTed as JSON, signed with HMAC-SHA256 under its secret."""

    class Event(models.TextChoices):
        REMINDER = "token.reminder", "Renewal reminder threshold reached"
        TOKEN_REJECTED = "token.rejected", "Server token rejected by Apple"
        TERMS_NOT_ACCEPTED = "terms.not_accepted", "Terms and conditions not accepted"
        SYNC_FAILED = "sync.failed", "Sync failed"
        LICENCE_EXPIRING = "licence.expiring", "Subscription licence expiring"

    url = models.URLField(max_length=500)
    secret_encrypted = models.BinaryField(editable=False)
    events = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Webhook to {self.url}"


class WebhookDelivery(models.Model):
    """One event for one webhook: retried with backoff until delivered or given up."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    # What makes an event happen once: a second occurrence with the same key is not sent again.
    event_key = models.CharField(max_length=200)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event_key"], name="one_delivery_per_event")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook.url}: {self.get_status_display()}"
