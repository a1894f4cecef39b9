"""The rules an uploaded push certificate must pass before it is stored, each written once.

`push_verdict` is pure, like the DEP token's `verdict`: it reads the current certificate, the
uploaded one and what the admin confirmed, and returns the `Refusal` to show, or None.

The topic guard is the rule that matters most. At the Apple Push Certificates Portal, Renew
keeps the certificate's topic and "Create a Certificate" makes a new one; devices are enrolled
with the topic, so a certificate with another topic leaves every enrolled device unreachable
until it is enrolled again (fleetdm/fleet#52469, micromdm#904; Zentral refuses it too). Apple
does not stop the admin, so the portal does, unless the admin types that they mean it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from dep_accounts.apple import apns
from dep_accounts.services.verdict import AppleIDChangedError, Refusal, TokenFileError

# What the admin types to replace the topic on purpose: the new topic, or this word.
REPLACE_WORD = "REPLACE"
APPLE_ID_CHANGED_LABEL = "The Apple ID that manages the push certificate has changed"
_APPLE_ID = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class TopicChangedError(Refusal):
    """The certificate has another topic: "Create" was clicked where "Renew" was meant."""

    code = "topic_changed"

    def __init__(
        self, message: str, *, explanation: str, current: str, found: str, apple_id: str
    ) -> None:
        super().__init__(message)
        # The message without its way to replace the topic, for where that is not offered.
        self.explanation = explanation
        self.current = current
        self.found = found
        self.apple_id = apple_id


class OlderCertificateError(Refusal):
    code = "older_certificate"


class WrongKeyError(Refusal):
    code = "wrong_key"


class AppleIDRequiredError(Refusal):
    code = "apple_id_required"


class NoRequestError(Refusal):
    code = "no_request"


@dataclass(frozen=True)
class PushConfirmations:
    """What the admin confirmed on purpose; each lifts one refusal."""

    apple_id_changed: bool = False
    # Typed by the admin: the new topic, or REPLACE_WORD.
    topic_replacement: str = ""

    def replaces_topic(self, topic: str) -> bool:
        typed = self.topic_replacement.strip()
        return bool(typed) and typed in (topic, REPLACE_WORD)


@dataclass(frozen=True)
class PushCurrent:
    """The certificate in use now ("" and None before the first upload)."""

    topic: str = ""
    serial_number: str = ""
    expires_at: datetime | None = None
    apple_id: str = ""


@dataclass(frozen=True)
class PushCandidate:
    """An uploaded certificate, parsed, with the Apple ID the admin says it was made with."""

    certificate: apns.PushCertificate
    key_is_ours: bool
    apple_id: str = ""


def push_verdict(
    current: PushCurrent,
    candidate: PushCandidate,
    confirmations: PushConfirmations,
    *,
    now: datetime,
) -> Refusal | None:
    """The refusal every entry point gives this certificate, or None when it may be stored."""
    certificate = candidate.certificate
    if not candidate.key_is_ours:
        return WrongKeyError(apns.PushCertificateKeyMismatchError().message)
    if certificate.is_expired(now=now):
        return TokenFileError(
            apns.PushCertificateExpiredError(expired_at=certificate.expires_at).message
        )
    apple_id = candidate.apple_id or current.apple_id
    if not apple_id:
        return AppleIDRequiredError(
            "Name the Apple ID you signed in with at the Apple Push Certificates Portal: it is "
            "not in the certificate, and every renewal must be made with it."
        )
    if not _APPLE_ID.fullmatch(apple_id):
        return AppleIDRequiredError(
            f"“{apple_id}” is not an Apple ID. Write the email address you signed in with at "
            "the Apple Push Certificates Portal."
        )
    if not current.topic:
        return None
    return _renewal_verdict(current, certificate, apple_id, confirmations)


def _renewal_verdict(
    current: PushCurrent,
    certificate: apns.PushCertificate,
    apple_id: str,
    confirmations: PushConfirmations,
) -> Refusal | None:
    if certificate.serial_number == current.serial_number:
        return OlderCertificateError(
            "This is the push certificate already in use. At the Apple Push Certificates Portal, "
            "click Renew on it and upload the new certificate."
        )
    if certificate.topic != current.topic and not confirmations.replaces_topic(certificate.topic):
        explanation = (
            f"This certificate has another topic ({certificate.topic}) than the one devices "
            f"are enrolled with ({current.topic}): it was made with “Create a Certificate” "
            "instead of “Renew”. With it, every enrolled device would stop answering until it "
            f"is enrolled again. Sign in to the Apple Push Certificates Portal as "
            f"{current.apple_id or 'the Apple ID that created the certificate'}, click Renew "
            f"on the certificate {current.topic}, upload the signed request and upload the "
            "certificate it gives."
        )
        return TopicChangedError(
            f"{explanation} To replace the topic on purpose, type {REPLACE_WORD} or the new "
            "topic in the confirmation field and save again.",
            explanation=explanation,
            current=current.topic,
            found=certificate.topic,
            apple_id=current.apple_id,
        )
    if current.expires_at is not None and certificate.expires_at < current.expires_at:
        return OlderCertificateError(
            f"This certificate expires on {certificate.expires_at:%-d %b %Y}, before the current "
            f"one ({current.expires_at:%-d %b %Y}): it is an older download. Upload the "
            "certificate you renewed last."
        )
    previous = current.apple_id
    if previous and apple_id != previous and not confirmations.apple_id_changed:
        return AppleIDChangedError(
            f"The current certificate was made by {previous}, not {apple_id}. Renew with the "
            "Apple ID that created it: Apple offers Renew only to that Apple ID. If another "
            f"Apple ID manages it now, tick “{APPLE_ID_CHANGED_LABEL}” and save again.",
            previous=previous,
            found=apple_id,
        )
    return None
