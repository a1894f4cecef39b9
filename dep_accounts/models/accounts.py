"""DEP accounts, their key pairs and server tokens, and the reminders sent for them.

Secrets (private keys, the four OAuth values of a server token) are stored only encrypted, in
`*_encrypted` fields that no `__str__`, admin page or template shows.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


def calendar_days_until(moment: datetime, *, now: datetime | None = None) -> int:
    """Days from today to the day of `moment` in the portal's time zone: 0 is "today"."""
    return (timezone.localdate(moment) - timezone.localdate(now or timezone.now())).days


class DEPAccount(models.Model):
    class State(models.TextChoices):
        AWAITING_TOKEN = "awaiting_token", "Awaiting token"
        OK = "ok", "Active"
        WARNING = "warning", "Expires soon"
        CRITICAL = "critical", "Expires within a week"
        EXPIRED = "expired", "Expired"
        REJECTED = "rejected", "Rejected by Apple"
        TERMS_NOT_ACCEPTED = "terms_not_accepted", "Terms not accepted"

    class SyncResult(models.TextChoices):
        NEVER = "never", "Never synced"
        RUNNING = "running", "Running"
        OK = "ok", "Succeeded"
        FAILED = "failed", "Failed"
        WAITING = "waiting", "Waiting for Apple"

    display_name = models.CharField(max_length=200, blank=True)
    server_name = models.CharField(max_length=200, blank=True)
    server_uuid = models.CharField(max_length=64, unique=True, null=True, blank=True)
    org_name = models.CharField(max_length=200, blank=True)
    org_id = models.CharField(max_length=64, blank=True)
    org_email = models.CharField(max_length=254, blank=True)
    org_type = models.CharField(max_length=32, blank=True)
    admin_apple_id = models.CharField("admin Apple ID", max_length=254, blank=True)

    state = models.CharField(max_length=32, choices=State, default=State.AWAITING_TOKEN)
    state_detail = models.CharField(max_length=500, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)

    auto_sync = models.BooleanField("automatic sync", default=True)
    sync_interval_minutes = models.PositiveIntegerField(default=60)
    default_profile = models.ForeignKey(
        "EnrollmentProfile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assign_default_profile = models.BooleanField(
        "assign the default profile to new devices", default=False
    )
    notification_emails = models.TextField(blank=True)

    class SyncPhase(models.TextChoices):
        FETCH = "fetch", "Full fetch"
        SYNC = "sync", "Incremental sync"

    # Where the device sync stands with Apple: a full fetch (resumable from its cursor, started
    # at sync_fetch_started_at) or incremental syncs from the cursor the fetch ended with.
    sync_phase = models.CharField(max_length=8, choices=SyncPhase, default=SyncPhase.FETCH)
    # Apple's cursors are opaque and of no stated length: kept whole, never cut to a column.
    sync_cursor = models.TextField(blank=True)
    sync_cursor_at = models.DateTimeField(null=True, blank=True)
    sync_fetch_started_at = models.DateTimeField(null=True, blank=True)
    sync_lock_until = models.DateTimeField(null=True, blank=True)
    # A sync is waiting in the queue for this account: no other is queued until it runs or this
    # lapses (its message lost with a broker that forgot it).
    sync_queued_until = models.DateTimeField(null=True, blank=True)
    sync_retry_at = models.DateTimeField(null=True, blank=True)
    sync_failures = models.PositiveIntegerField(default=0)
    last_sync_started_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_result = models.CharField(max_length=16, choices=SyncResult, default=SyncResult.NEVER)
    last_sync_message = models.CharField(max_length=500, blank=True)
    sync_devices_seen = models.PositiveIntegerField(default=0)
    device_count = models.PositiveIntegerField(default=0)
    # Why the cursor was last discarded for a full fetch (Apple repeated it, an admin asked, the
    # periodic reconciliation), and when.
    sync_cursor_reset_reason = models.CharField(max_length=500, blank=True)
    sync_cursor_reset_at = models.DateTimeField(null=True, blank=True)
    # A sync that stopped on an error the portal did not expect: shown in the banner until a
    # sync succeeds.
    sync_alert = models.CharField(max_length=500, blank=True)

    # Guarded renewal: an admin said they are about to download a new token in ABM (which
    # resets this one); until the new file arrives, the old token is watched.
    renewal_started_at = models.DateTimeField(null=True, blank=True)
    renewal_started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    renewal_checked_at = models.DateTimeField(null=True, blank=True)
    old_token_rejected_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "DEP account"
        ordering = [models.F("token_expires_at").asc(nulls_last=True), "id"]
        indexes = [
            models.Index(fields=["token_expires_at"]),
            # The hourly expiry task reads only the accounts whose state the clock has moved.
            models.Index(fields=["state", "token_expires_at"], name="dep_account_state_expiry"),
        ]
        permissions = [("manage_dep_accounts", "Can upload tokens and change DEP accounts")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dep_accounts:detail", args=[self.pk])

    @property
    def name(self) -> str:
        return self.name_of(self.display_name, self.server_name, self.pk)

    @staticmethod
    def name_of(display_name: str, server_name: str, pk: int | None) -> str:
        """The name an account goes by, from its columns (for reads that load no model)."""
        return display_name or server_name or f"DEP account {pk}"

    def days_left(self, now: datetime | None = None) -> int | None:
        if self.token_expires_at is None:
            return None
        return calendar_days_until(self.token_expires_at, now=now)

    @property
    def sync_interrupted(self) -> bool:
        """A sync marked running whose worker stopped renewing its lease (it died mid-sync)."""
        return self.last_sync_result == self.SyncResult.RUNNING and (
            self.sync_lock_until is None or self.sync_lock_until < timezone.now()
        )

    @property
    def token_is_usable(self) -> bool:
        """Apple calls are made only with a token Apple still accepts."""
        return self.state in {self.State.OK, self.State.WARNING, self.State.CRITICAL}

    @property
    def notification_email_list(self) -> list[str]:
        return [e.strip() for e in self.notification_emails.replace(",", "\n").split() if e.strip()]


class KeyPair(models.Model):
    """The account's RSA key pair: ABM encrypts server tokens for its certificate."""

    account = models.OneToOneField(DEPAccount, on_delete=models.CASCADE, related_name="key_pair")
    private_key_encrypted = models.BinaryField(editable=False)
    certificate_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Key pair of {self.account}"


class ServerToken(models.Model):
    """One uploaded server token; the account's history, one of them current."""

    account = models.ForeignKey(DEPAccount, on_delete=models.CASCADE, related_name="server_tokens")
    secrets_encrypted = models.BinaryField(editable=False)
    access_token_expiry = models.DateTimeField()
    consumer_key_fingerprint = models.CharField(max_length=80)
    server_uuid = models.CharField(max_length=64)
    admin_apple_id = models.CharField("Apple ID", max_length=254, blank=True)
    apple_id_change_confirmed = models.BooleanField(default=False)
    file_name = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    is_current = models.BooleanField(default=True)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(is_current=True), name="one_current_token"
            )
        ]

    def __str__(self) -> str:
        return f"Server token {self.consumer_key_fingerprint} of {self.account}"


class ReminderSent(models.Model):
    """One renewal reminder: the unique key makes each one go out once, whatever retries."""

    account = models.ForeignKey(DEPAccount, on_delete=models.CASCADE, related_name="reminders")
    token = models.ForeignKey(ServerToken, on_delete=models.CASCADE, related_name="reminders")
    days_before = models.IntegerField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "days_before"], name="one_reminder_per_step")
        ]

    def __str__(self) -> str:
        return f"Reminder {self.days_before} days before expiry of {self.account}"
