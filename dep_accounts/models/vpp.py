"""Apps and Books content tokens: one per ABM location, its uploads, and the reminders sent for
Apple's credentials other than DEP server tokens.

The content token itself (the whole .vpptoken text, Apple's bearer credential) is stored only
encrypted, in `credential_encrypted`, which no `__str__`, admin page or template shows.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from dep_accounts.models.accounts import calendar_days_until


class ContentToken(models.Model):
    """The content token of one Apps and Books location, as last uploaded and checked."""

    class State(models.TextChoices):
        OK = "ok", "Active"
        WARNING = "warning", "Expires soon"
        CRITICAL = "critical", "Expires within a week"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked by Apple"
        INVALID = "invalid", "Not accepted by Apple"
        ANOTHER_MDM = "another_mdm", "Managed by another MDM"

    location_name = models.CharField(max_length=200)
    # Apple's `uId` of the location: a renewal must be for the same one.
    location_uid = models.CharField("location ID", max_length=100, unique=True)
    country = models.CharField(max_length=8, blank=True)
    org_name = models.CharField("organisation", max_length=200, blank=True)
    website_url = models.CharField(max_length=200, blank=True)
    # Apple does not say who downloaded a content token: the admin tells us at upload.
    apple_id = models.CharField("Apple ID", max_length=254, blank=True)
    notification_emails = models.TextField(blank=True)

    credential_encrypted = models.BinaryField(editable=False)
    fingerprint = models.CharField(max_length=80)
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=32, choices=State, default=State.OK)
    state_detail = models.CharField(max_length=500, blank=True)
    # Who manages the location at Apple, as last seen (ours once claimed).
    mdm_name = models.CharField("managing MDM", max_length=100, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    asset_count = models.PositiveIntegerField(null=True, blank=True)
    licences_total = models.PositiveIntegerField(null=True, blank=True)
    licences_assigned = models.PositiveIntegerField(null=True, blank=True)
    licences_available = models.PositiveIntegerField(null=True, blank=True)
    counted_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["expires_at", "id"]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dep_accounts:content_token_detail", args=[self.pk])

    @property
    def name(self) -> str:
        return self.location_name or f"Content token {self.pk}"

    def days_left(self, now: datetime | None = None) -> int:
        return calendar_days_until(self.expires_at, now=now)

    @property
    def is_usable(self) -> bool:
        """Apple accepts it (as far as the portal knows) and it is ours to use."""
        return self.state in {self.State.OK, self.State.WARNING, self.State.CRITICAL}

    @property
    def notification_email_list(self) -> list[str]:
        return [e.strip() for e in self.notification_emails.replace(",", "\n").split() if e.strip()]


class ContentTokenUpload(models.Model):
    """One uploaded .vpptoken of a location: the history, newest first."""

    content_token = models.ForeignKey(
        ContentToken, on_delete=models.CASCADE, related_name="uploads"
    )
    fingerprint = models.CharField(max_length=80)
    expires_at = models.DateTimeField()
    apple_id = models.CharField("Apple ID", max_length=254, blank=True)
    # The MDM the location was taken over from, when the admin confirmed it.
    taken_over_from = models.CharField(max_length=100, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"Content token {self.fingerprint} of {self.content_token}"


class CredentialReminder(models.Model):
    """A renewal reminder for a credential of a kind other than DEP (those use ReminderSent).

    `version` names one issue of the credential (a renewal is a new version, whose reminders
    start again); the unique key makes each step go out once, whatever retries.
    """

    kind = models.CharField(max_length=32)
    version = models.CharField(max_length=100)
    days_before = models.IntegerField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "version", "days_before"], name="one_credential_reminder_per_step"
            )
        ]

    def __str__(self) -> str:
        return f"Reminder {self.days_before} days before expiry of {self.kind} {self.version}"
