"""DEP accounts, their key pairs and server tokens, devices, profiles, the licence, the audit log.

Models stay thin. Secrets (private keys, the four OAuth values of a server token) are stored
only encrypted, in `*_encrypted` fields that no `__str__`, admin page or template shows.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from dep_accounts.services.webhook_transport import url_without_credentials


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
    sync_cursor = models.CharField(max_length=500, blank=True)
    sync_cursor_at = models.DateTimeField(null=True, blank=True)
    sync_fetch_started_at = models.DateTimeField(null=True, blank=True)
    sync_lock_until = models.DateTimeField(null=True, blank=True)
    sync_retry_at = models.DateTimeField(null=True, blank=True)
    sync_failures = models.PositiveIntegerField(default=0)
    last_sync_started_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_result = models.CharField(max_length=16, choices=SyncResult, default=SyncResult.NEVER)
    last_sync_message = models.CharField(max_length=500, blank=True)
    sync_devices_seen = models.PositiveIntegerField(default=0)
    device_count = models.PositiveIntegerField(default=0)

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
        indexes = [models.Index(fields=["token_expires_at"])]
        permissions = [("manage_dep_accounts", "Can upload tokens and change DEP accounts")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dep_accounts:detail", args=[self.pk])

    @property
    def name(self) -> str:
        return self.display_name or self.server_name or f"DEP account {self.pk}"

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


class EnrollmentProfile(models.Model):
    account = models.ForeignKey(DEPAccount, on_delete=models.CASCADE, related_name="profiles")
    profile_uuid = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=125)
    url = models.URLField(max_length=2000)
    is_supervised = models.BooleanField(default=True)
    is_mandatory = models.BooleanField(default=True)
    is_mdm_removable = models.BooleanField(default=False)
    allow_pairing = models.BooleanField(default=True)
    department = models.CharField(max_length=125, blank=True)
    support_phone_number = models.CharField(max_length=50, blank=True)
    support_email_address = models.EmailField(blank=True)
    skip_setup_items = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class DEPDevice(models.Model):
    account = models.ForeignKey(DEPAccount, on_delete=models.CASCADE, related_name="devices")
    serial_number = models.CharField(max_length=64)
    model = models.CharField(max_length=200, blank=True)
    description = models.CharField(max_length=200, blank=True)
    color = models.CharField(max_length=64, blank=True)
    asset_tag = models.CharField(max_length=200, blank=True)
    os = models.CharField(max_length=32, blank=True)
    device_family = models.CharField(max_length=32, blank=True)
    profile_status = models.CharField(max_length=32, blank=True)
    profile_uuid = models.CharField(max_length=64, blank=True)
    profile_assign_time = models.DateTimeField(null=True, blank=True)
    device_assigned_date = models.DateTimeField(null=True, blank=True)
    device_assigned_by = models.CharField(max_length=254, blank=True)
    op_date = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # New to the account while its default profile is assigned automatically, and not yet
    # assigned: kept until Apple answers for the device, whatever fails in between.
    default_profile_pending = models.BooleanField(default=False)

    class Meta:
        verbose_name = "DEP device"
        ordering = ["serial_number", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "serial_number"], name="one_device_per_serial"
            )
        ]
        indexes = [models.Index(fields=["serial_number"])]

    def __str__(self) -> str:
        return self.serial_number


class SubscriptionLicence(models.Model):
    """The portal's subscription licence: a document signed by the vendor."""

    document = models.TextField()
    licence_id = models.CharField(max_length=64)
    customer = models.CharField(max_length=200)
    plan = models.CharField(max_length=64)
    device_limit = models.PositiveIntegerField()
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    is_current = models.BooleanField(default=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"], condition=Q(is_current=True), name="one_current_licence"
            )
        ]

    def __str__(self) -> str:
        return f"{self.plan} licence for {self.customer}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.valid_until <= (now or timezone.now())


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        ACCOUNT_CREATED = "account_created", "DEP account added"
        ACCOUNT_CHANGED = "account_changed", "DEP account changed"
        TOKEN_UPLOADED = "token_uploaded", "Server token uploaded"
        TOKEN_RENEWED = "token_renewed", "Server token renewed"
        TOKEN_REJECTED = "token_rejected", "Server token upload rejected"
        APPLE_ID_CHANGED = "apple_id_changed", "Apple ID change confirmed"
        SYNC = "sync", "Sync"
        PROFILE_CHANGED = "profile_changed", "Enrollment profile changed"
        LICENCE_CHANGED = "licence_changed", "Subscription licence changed"
        STATE_CHANGED = "state_changed", "Token state changed"
        REMINDER_SENT = "reminder_sent", "Renewal reminder sent"
        API_TOKEN_CHANGED = "api_token_changed", "API token created or revoked"
        WEBHOOK_CHANGED = "webhook_changed", "Webhook changed"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Succeeded"
        FAILURE = "failure", "Failed"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(max_length=150, blank=True)
    account = models.ForeignKey(
        DEPAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    action = models.CharField(max_length=32, choices=Action)
    outcome = models.CharField(max_length=16, choices=Outcome, default=Outcome.SUCCESS)
    message = models.CharField(max_length=1000)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_action_display()}: {self.message}"


class Banner(models.Model):
    """The banner every page shows after login: one row, rewritten whenever a state changes."""

    items = models.JSONField(default=list)
    computed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Banner with {len(self.items)} item(s)"


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


class APIToken(models.Model):
    """A user's key to the JSON API; only its SHA-256 is kept, the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # None: until revoked. From this moment on the API refuses the key.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"API token {self.key_prefix}… of {self.user}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


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
        return f"Webhook to {self.url_shown}"

    @property
    def url_shown(self) -> str:
        """The URL without any `user:password@` a webhook added before they were refused has."""
        return url_without_credentials(self.url)


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
