"""What Apple lists for a DEP account: its devices, and the enrollment profiles they get."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from dep_accounts.models.accounts import DEPAccount


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
    # Apple is migrating the device to another MDM server by then: the admin must act before.
    mdm_migration_deadline = models.DateTimeField(null=True, blank=True)
    # Removed because Apple released it for a replacement device (AppleCare).
    # A database default: the raw page upsert in services/device_upsert.py does not name it.
    released_by_replacement = models.BooleanField(default=False, db_default=False)
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
