"""The portal's MDM push (APNs) certificate: our key and CSR, and every certificate uploaded.

The key and the CSR are kept only encrypted, in `*_encrypted` fields; the certificates
themselves are public (devices see them) and kept as PEM text.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dep_accounts.models.accounts import calendar_days_until


class PushCertificate(models.Model):
    """The one push certificate of this portal: its key, CSR, and the current certificate."""

    class State(models.TextChoices):
        AWAITING_CERTIFICATE = "awaiting_certificate", "Awaiting certificate"
        OK = "ok", "Active"
        WARNING = "warning", "Expires soon"
        CRITICAL = "critical", "Expires within a week"
        EXPIRED = "expired", "Expired"

    private_key_encrypted = models.BinaryField(editable=False)
    csr_encrypted = models.BinaryField(editable=False)
    organisation = models.CharField(max_length=200, blank=True)
    topic = models.CharField(max_length=200, blank=True)
    serial_number = models.CharField(max_length=80, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Not in the certificate: the admin names it at the first upload (Apple's portal is per
    # Apple ID, and Renew is offered only to the Apple ID that created the certificate).
    apple_id = models.CharField("Apple ID", max_length=254, blank=True)
    state = models.CharField(max_length=32, choices=State, default=State.AWAITING_CERTIFICATE)
    state_detail = models.CharField(max_length=500, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "push certificate"

    def __str__(self) -> str:
        return f"Push certificate {self.topic or '(awaiting certificate)'}"

    @property
    def name(self) -> str:
        return "APNs push certificate"

    def days_left(self, now: datetime | None = None) -> int | None:
        if self.expires_at is None:
            return None
        return calendar_days_until(self.expires_at, now=now)


class PushCertificateUpload(models.Model):
    """One uploaded push certificate; the history of who renewed it, one of them current."""

    push_certificate = models.ForeignKey(
        PushCertificate, on_delete=models.CASCADE, related_name="uploads"
    )
    certificate_pem = models.TextField()
    topic = models.CharField(max_length=200)
    serial_number = models.CharField(max_length=80)
    not_before = models.DateTimeField()
    expires_at = models.DateTimeField()
    apple_id = models.CharField("Apple ID", max_length=254, blank=True)
    apple_id_change_confirmed = models.BooleanField(default=False)
    topic_replaced = models.BooleanField(default=False)
    file_name = models.CharField(max_length=255, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    is_current = models.BooleanField(default=True)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["push_certificate"],
                condition=Q(is_current=True),
                name="one_current_push_certificate",
            )
        ]

    def __str__(self) -> str:
        return f"Push certificate {self.serial_number} ({self.topic})"

    @property
    def admin_apple_id(self) -> str:
        """The name the custodian history (`selectors.token_custodians`) reads."""
        return self.apple_id
