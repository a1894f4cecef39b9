"""Django admin at /django-admin/: a read-mostly view for superusers.

Secrets never show here: the `*_encrypted` fields are excluded. Nothing can be added, changed or
deleted here: changes go through the console, whose services check them and write the audit log.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin
from django.http import HttpRequest

from dep_accounts.models import (
    AuditEvent,
    DEPAccount,
    DEPDevice,
    EnrollmentProfile,
    KeyPair,
    ServerToken,
    SubscriptionLicence,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the services write."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(DEPAccount)
class DEPAccountAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "server_name",
        "org_name",
        "admin_apple_id",
        "state",
        "token_expires_at",
        "last_sync_result",
        "device_count",
    ]
    list_filter = ["state", "last_sync_result", "auto_sync"]
    search_fields = ["display_name", "server_name", "org_name", "server_uuid", "admin_apple_id"]
    exclude = ["sync_cursor"]


@admin.register(KeyPair)
class KeyPairAdmin(ReadOnlyAdmin):
    list_display = ["account", "created_at"]
    exclude = ["private_key_encrypted"]


@admin.register(ServerToken)
class ServerTokenAdmin(ReadOnlyAdmin):
    list_display = [
        "account",
        "consumer_key_fingerprint",
        "access_token_expiry",
        "admin_apple_id",
        "uploaded_by",
        "uploaded_at",
        "is_current",
    ]
    list_filter = ["is_current"]
    exclude = ["secrets_encrypted"]


@admin.register(EnrollmentProfile)
class EnrollmentProfileAdmin(ReadOnlyAdmin):
    list_display = ["name", "account", "profile_uuid", "is_supervised", "created_at"]
    search_fields = ["name", "profile_uuid"]


@admin.register(DEPDevice)
class DEPDeviceAdmin(ReadOnlyAdmin):
    list_display = ["serial_number", "model", "os", "account", "profile_status", "removed_at"]
    list_filter = ["os", "device_family", "profile_status"]
    list_select_related = ["account"]
    search_fields = ["serial_number"]


@admin.register(SubscriptionLicence)
class SubscriptionLicenceAdmin(ReadOnlyAdmin):
    list_display = ["plan", "customer", "device_limit", "valid_from", "valid_until", "is_current"]
    exclude = ["document"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "account", "action", "outcome", "message"]
    list_filter = ["action", "outcome"]
    list_select_related = ["account"]
    search_fields = ["message", "actor_name"]


# Sign-in's own records are kept by django-allauth as people sign in, never edited by hand: TOTP
# secrets and recovery codes are encrypted, and the IdP's tokens are not stored at all.
for _model in (EmailAddress, SocialApp, SocialAccount, SocialToken, Authenticator):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
