"""The outbox: every email the portal sends, a row per recipient, with its delivery state."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from dep_accounts.models.accounts import DEPAccount


class OutboundEmail(models.Model):
    """One email to one recipient: recorded first, sent after commit by its own task.

    A row per recipient, so a recipient the mail server refuses fails alone, and a worker that
    dies mid-send leaves one row uncertain instead of resending to everyone.
    """

    class Kind(models.TextChoices):
        REMINDER = "reminder", "Renewal reminder"
        TOKEN_RESET = "token_reset", "Old token reset"
        LICENCE = "licence", "Licence expiring"
        TEST = "test", "Test email"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        UNCERTAIN = "uncertain", "Interrupted while sending"

    kind = models.CharField(max_length=16, choices=Kind)
    # What makes a notification go out once: the same key and recipient are not queued again.
    notification_key = models.CharField(max_length=200)
    account = models.ForeignKey(
        DEPAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="emails"
    )
    recipient = models.EmailField()
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    # The mail server's answer to the last attempt, e.g. "550 5.1.1 No such user".
    last_answer = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification_key", "recipient"], name="one_email_per_recipient"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient}: {self.get_status_display()}"
