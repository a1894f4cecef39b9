"""The portal's models, one module per subject; import them from here.

Models stay thin. Secrets (private keys, the four OAuth values of a server token, webhook
secrets) are stored only encrypted, in `*_encrypted` fields that no `__str__`, admin page or
template shows.
"""

from __future__ import annotations

from dep_accounts.models.accounts import (
    DEPAccount,
    KeyPair,
    ReminderSent,
    ServerToken,
    calendar_days_until,
)
from dep_accounts.models.apns import PushCertificate, PushCertificateUpload
from dep_accounts.models.audit import AuditEvent, Banner
from dep_accounts.models.automation import APIToken, CalendarFeed, Webhook, WebhookDelivery
from dep_accounts.models.devices import DEPDevice, EnrollmentProfile
from dep_accounts.models.licence import SubscriptionLicence
from dep_accounts.models.outbox import OutboundEmail

__all__ = [
    "APIToken",
    "AuditEvent",
    "Banner",
    "CalendarFeed",
    "DEPAccount",
    "DEPDevice",
    "EnrollmentProfile",
    "KeyPair",
    "OutboundEmail",
    "PushCertificate",
    "PushCertificateUpload",
    "ReminderSent",
    "ServerToken",
    "SubscriptionLicence",
    "Webhook",
    "WebhookDelivery",
    "calendar_days_until",
]
