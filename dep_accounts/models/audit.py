"""The audit log, and the banner every page shows."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import ngettext

from dep_accounts.models.accounts import DEPAccount


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
        EMAIL_SENT = "email_sent", "Email sent"
        EMAIL_FAILED = "email_failed", "Email not delivered"
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_REFUSED = "sign_in_refused", "Sign-in refused"
        ROLE_CHANGED = "role_changed", "Role changed"
        USER_DEACTIVATED = "user_deactivated", "User deactivated"
        TWO_FACTOR_CHANGED = "two_factor_changed", "Two-factor authentication changed"
        PUSH_REQUESTED = "push_requested", "Push certificate request signed"
        PUSH_UPLOADED = "push_uploaded", "Push certificate uploaded"
        PUSH_RENEWED = "push_renewed", "Push certificate renewed"
        PUSH_REJECTED = "push_rejected", "Push certificate upload rejected"
        PUSH_TOPIC_REPLACED = "push_topic_replaced", "Push topic replaced"

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
        return ngettext(
            "Banner with %(count)d item", "Banner with %(count)d items", len(self.items)
        ) % {"count": len(self.items)}
