"""The portal's subscription licence."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


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
