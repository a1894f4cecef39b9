"""The push certificate's two steps: the signed request, and the certificate Apple issues for it.

`push_request_make` makes our key and CSR once (kept encrypted), signs the request with the MDM
vendor certificate (`APNS_VENDOR_CERTIFICATE`) and returns it for the admin to upload at the
Apple Push Certificates Portal. `push_certificate_intake` takes the `.pem` that portal issues,
from the page, the API and the command line alike: read → parse → verdict → store → audit, a
refusal recorded in the audit log here, once, with the DEP intake's `refusal_record`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import apns
from dep_accounts.encryption import secret_decrypt, secret_encrypt
from dep_accounts.errors import DomainError
from dep_accounts.models import AuditEvent, PushCertificate, PushCertificateUpload
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.services.intake import TokenUpload, refusal_record, upload_read
from dep_accounts.services.push.expiry import push_state_for
from dep_accounts.services.push.verdict import (
    NoRequestError,
    PushCandidate,
    PushConfirmations,
    PushCurrent,
    push_verdict,
)
from dep_accounts.services.verdict import ConcurrentUploadError, Refusal, TokenFileError
from dep_accounts.users import User

EMPTY_CERTIFICATE_FILE = "This file is empty: the download did not finish. " + apns.UPLOAD_AGAIN
NOTHING_CONFIRMED = PushConfirmations()


class VendorCertificateMissingError(DomainError):
    """The portal cannot sign a request: an operator must configure the vendor certificate."""


def vendor_certificate() -> apns.VendorCertificate:
    """The MDM vendor certificate of `APNS_VENDOR_CERTIFICATE`, loaded and checked."""
    path = settings.APNS_VENDOR_CERTIFICATE
    if not path:
        raise VendorCertificateMissingError(
            "No MDM vendor certificate is configured, so no push-certificate request can be "
            "signed. The operator sets APNS_VENDOR_CERTIFICATE to its file (PEM or PKCS#12)."
        )
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise VendorCertificateMissingError(
            f"The MDM vendor certificate file APNS_VENDOR_CERTIFICATE names cannot be read "
            f"({exc.strerror}). The operator must fix the setting."
        ) from exc
    password = settings.APNS_VENDOR_CERTIFICATE_PASSWORD.encode() or None
    try:
        return apns.vendor_certificate_load(data, password=password)
    except apns.VendorCertificateError as exc:
        raise VendorCertificateMissingError(exc.message) from exc


def push_certificate_current() -> PushCertificate | None:
    """The portal's push certificate row, once a request was made."""
    return PushCertificate.objects.first()


def push_certificate_requested() -> PushCertificate:
    """The push certificate row an uploaded certificate is for, or why there is none yet."""
    push = push_certificate_current()
    if push is None:
        raise NoRequestError(
            "This portal has not made a push-certificate request yet, so no certificate "
            "can be for its key. Download the signed request on the APNs Certificate page, "
            "upload it at the Apple Push Certificates Portal, and upload what it issues."
        )
    return push


@sensitive_variables()
def push_request_make(*, actor: User | None, organisation: str = "") -> bytes:
    """The signed push-certificate request; our key and CSR are made the first time only."""
    vendor = vendor_certificate()
    with transaction.atomic():
        push = PushCertificate.objects.select_for_update().first()
        if push is None:
            key = apns.push_key_generate(organisation=organisation)
            push = PushCertificate.objects.create(
                private_key_encrypted=secret_encrypt(key.private_key_pem),
                csr_encrypted=secret_encrypt(key.csr_pem),
                organisation=organisation[:200],
            )
        request = apns.push_certificate_request_build(
            csr_pem=secret_decrypt(push.csr_encrypted), vendor=vendor
        )
        push.requested_at = timezone.now()
        push.save(update_fields=["requested_at", "updated_at"])
        audit_record(
            action=AuditEvent.Action.PUSH_REQUESTED,
            message="Signed a push-certificate request with the MDM vendor certificate "
            f"“{vendor.name}”"
            + (f" to renew {push.topic}." if push.topic else " for the first certificate."),
            actor=actor,
            details={"vendor": vendor.name, "topic": push.topic},
        )
    return request


def push_current_for(push: PushCertificate) -> PushCurrent:
    return PushCurrent(
        topic=push.topic,
        serial_number=push.serial_number,
        expires_at=push.expires_at,
        apple_id=push.apple_id,
    )


@sensitive_variables()
def push_certificate_check(
    *, push: PushCertificate, content: bytes, apple_id: str = ""
) -> PushCandidate:
    """The uploaded file parsed, and whether it was issued for our key."""
    try:
        certificate = apns.push_certificate_parse(content)
    except apns.PushCertificateError as exc:
        raise TokenFileError(exc.message) from exc
    try:
        apns.push_certificate_check_key(
            certificate, private_key_pem=secret_decrypt(push.private_key_encrypted)
        )
    except apns.PushCertificateKeyMismatchError:
        key_is_ours = False
    else:
        key_is_ours = True
    return PushCandidate(
        certificate=certificate, key_is_ours=key_is_ours, apple_id=apple_id.strip().lower()
    )


def push_certificate_read(upload: TokenUpload) -> bytes:
    return upload_read(
        upload,
        max_bytes=apns.PUSH_CERTIFICATE_MAX_BYTES,
        too_large="This file is {size}; an APNs push certificate is a few KB. " + apns.UPLOAD_AGAIN,
        empty=EMPTY_CERTIFICATE_FILE,
    )


def push_refusal_record(*, actor: User | None, refusal: Refusal, file_name: str) -> None:
    refusal_record(
        account=None,
        actor=actor,
        refusal=refusal,
        file_name=file_name,
        action=AuditEvent.Action.PUSH_REJECTED,
        what="Push certificate upload",
        kind="push_certificate",
    )


@sensitive_variables()
def push_certificate_intake(
    *,
    upload: TokenUpload,
    actor: User | None,
    apple_id: str = "",
    confirmations: PushConfirmations = NOTHING_CONFIRMED,
) -> PushCertificateUpload:
    """Take an issued push certificate by every rule, or record and raise why not."""
    try:
        content = push_certificate_read(upload)
        push = push_certificate_requested()
        candidate = push_certificate_check(push=push, content=content, apple_id=apple_id)
        with transaction.atomic():
            locked = PushCertificate.objects.select_for_update().get(pk=push.pk)
            refusal = push_verdict(
                push_current_for(locked), candidate, confirmations, now=timezone.now()
            )
            if refusal is not None:
                raise refusal
            stored = _store(locked, candidate, confirmations, actor, upload.name)
    except IntegrityError as exc:
        refusal = ConcurrentUploadError(
            "Another upload of the push certificate finished first. Reload the page."
        )
        push_refusal_record(actor=actor, refusal=refusal, file_name=upload.name)
        raise refusal from exc
    except Refusal as refusal:
        push_refusal_record(actor=actor, refusal=refusal, file_name=upload.name)
        raise
    banner_refresh()
    return stored


def _store(
    push: PushCertificate,
    candidate: PushCandidate,
    confirmations: PushConfirmations,
    actor: User | None,
    file_name: str,
) -> PushCertificateUpload:
    now = timezone.now()
    certificate = candidate.certificate
    previous = push_current_for(push)
    apple_id = candidate.apple_id or push.apple_id
    PushCertificateUpload.objects.filter(push_certificate=push, is_current=True).update(
        is_current=False, replaced_at=now
    )
    topic_replaced = bool(previous.topic) and certificate.topic != previous.topic
    apple_id_changed = bool(previous.apple_id) and apple_id != previous.apple_id
    stored = PushCertificateUpload.objects.create(
        push_certificate=push,
        certificate_pem=certificate.certificate_pem.decode(),
        topic=certificate.topic,
        serial_number=certificate.serial_number,
        not_before=certificate.not_before,
        expires_at=certificate.expires_at,
        apple_id=apple_id,
        apple_id_change_confirmed=apple_id_changed and confirmations.apple_id_changed,
        topic_replaced=topic_replaced,
        file_name=file_name[:255],
        uploaded_by=actor_user(actor),
        uploaded_at=now,
    )
    push.topic = certificate.topic
    push.serial_number = certificate.serial_number
    push.expires_at = certificate.expires_at
    push.apple_id = apple_id
    push.state, push.state_detail = push_state_for(expires_at=certificate.expires_at, now=now)
    push.save()
    _stored_record(previous, stored, actor, topic_replaced, apple_id_changed)
    return stored


def _stored_record(
    previous: PushCurrent,
    stored: PushCertificateUpload,
    actor: User | None,
    topic_replaced: bool,
    apple_id_changed: bool,
) -> None:
    details = {"serial": stored.serial_number, "topic": stored.topic, "file_name": stored.file_name}
    if apple_id_changed:
        audit_record(
            action=AuditEvent.Action.APPLE_ID_CHANGED,
            message="Confirmed that the Apple ID managing the APNs push certificate changed "
            f"from {previous.apple_id} to {stored.apple_id}.",
            actor=actor,
            details={"previous": previous.apple_id, "new": stored.apple_id},
        )
    if topic_replaced:
        audit_record(
            action=AuditEvent.Action.PUSH_TOPIC_REPLACED,
            message=f"Replaced the push topic {previous.topic} with {stored.topic} on purpose: "
            "devices enrolled with the old topic no longer answer until they enroll again.",
            actor=actor,
            details=details | {"previous_topic": previous.topic},
        )
    expires = _day(stored.expires_at)
    if not previous.topic:
        message = f"Uploaded the APNs push certificate {stored.topic}, made by "
        message += f"{stored.apple_id}; it expires {expires}."
        action = AuditEvent.Action.PUSH_UPLOADED
    else:
        message = f"APNs push certificate renewed: expires {expires}"
        message += f" (was {_day(previous.expires_at)})." if previous.expires_at else "."
        action = AuditEvent.Action.PUSH_RENEWED
    audit_record(action=action, message=message, actor=actor, details=details)


def _day(moment: datetime) -> str:
    return f"{moment:%-d %b %Y}"
