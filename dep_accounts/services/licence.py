"""The subscription licence: a document signed by the vendor with Ed25519.

A licence reads `mdmportal-licence-v1.<payload>.<signature>`, both parts unpadded base64url;
the payload is JSON with licence_id, customer, plan, device_limit, valid_from, valid_until.
Only the signature makes it valid, so a licence edited in the database or the file is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import schema as apple_schema
from dep_accounts.errors import DomainError
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice, SubscriptionLicence
from dep_accounts.selectors import licence_current, licence_devices_stored
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.expiry import banner_refresh, licence_limit_text
from dep_accounts.users import User

PREFIX = "mdmportal-licence-v1."


class LicenceError(DomainError):
    """A licence file that cannot be installed; `message` says why."""


class LicenceLimitError(LicenceError):
    """A sync stopped at the licence's device limit; the devices stored so far stay."""


@dataclass(frozen=True)
class LicenceTerms:
    licence_id: str
    customer: str
    plan: str
    device_limit: int
    valid_from: datetime
    valid_until: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@sensitive_variables("signing_key", "private_key")
def licence_document_issue(
    *,
    signing_key: str,
    customer: str,
    plan: str,
    device_limit: int,
    valid_from: datetime,
    valid_until: datetime,
) -> str:
    """A signed licence document (the vendor's side; the portal uses it for demos and tests)."""
    payload = json.dumps(
        {
            "licence_id": secrets.token_hex(8),
            "customer": customer,
            "plan": plan,
            "device_limit": device_limit,
            "valid_from": valid_from.isoformat(),
            "valid_until": valid_until.isoformat(),
        },
        separators=(",", ":"),
    ).encode()
    signed = PREFIX + _b64(payload)
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(signing_key))
    return f"{signed}.{_b64(key.sign(signed.encode()))}"


def licence_document_verify(document: str, *, public_key: str) -> LicenceTerms:
    """The terms of a licence whose signature the vendor's public key confirms."""
    document = document.strip()
    if not document.startswith(PREFIX) or document.count(".") != 2:
        raise LicenceError(
            "This is not an mdmportal licence file. Upload the .licence file your vendor sent."
        )
    signed, _, signature = document.rpartition(".")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(_unb64(signature), signed.encode())
        payload = json.loads(_unb64(signed.removeprefix(PREFIX)))
        return LicenceTerms(
            licence_id=str(payload["licence_id"]),
            customer=str(payload["customer"]),
            plan=str(payload["plan"]),
            device_limit=int(payload["device_limit"]),
            valid_from=datetime.fromisoformat(payload["valid_from"]),
            valid_until=datetime.fromisoformat(payload["valid_until"]),
        )
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise LicenceError(
            "This licence's signature is not valid: it was changed after it was issued, or was "
            "issued for another installation. Upload the file exactly as your vendor sent it."
        ) from exc
    except (KeyError, TypeError) as exc:
        raise LicenceError(
            "This licence lacks required terms. Ask your vendor for a new licence file."
        ) from exc


def licence_install(
    *, document: str, actor: User | None, replace: bool = False
) -> SubscriptionLicence:
    """Verify a licence document and make it the current licence.

    `replace` installs it even when it is expired, not valid yet or older than the current
    one: the demo and tests use it to show what an admin sees then.
    """
    terms = licence_document_verify(document, public_key=settings.LICENCE_PUBLIC_KEY)
    if terms.valid_until <= terms.valid_from:
        raise LicenceError("This licence ends before it starts. Ask your vendor for a new one.")
    if not replace:
        _licence_refusal_raise(terms)
    with transaction.atomic():
        SubscriptionLicence.objects.filter(is_current=True).update(is_current=False)
        licence = SubscriptionLicence.objects.create(
            document=document.strip(),
            licence_id=terms.licence_id,
            customer=terms.customer,
            plan=terms.plan,
            device_limit=terms.device_limit,
            valid_from=terms.valid_from,
            valid_until=terms.valid_until,
            uploaded_by=actor_user(actor),
        )
        audit_record(
            action=AuditEvent.Action.LICENCE_CHANGED,
            message=f"Installed {terms.plan} licence for {terms.customer}, "
            f"{terms.device_limit:,} devices, valid until {terms.valid_until:%-d %b %Y}.",
            actor=actor,
        )
    banner_refresh()
    return licence


def _licence_refusal_raise(terms: LicenceTerms) -> None:
    now = timezone.now()
    if terms.valid_from > now:
        raise LicenceError(
            f"This licence starts on {terms.valid_from:%-d %b %Y}: it is not valid yet. "
            "Install it on that day, or ask your vendor for one valid now."
        )
    if terms.valid_until <= now:
        raise LicenceError(
            f"This licence expired on {terms.valid_until:%-d %b %Y}. "
            "Ask your vendor for a current licence."
        )
    current = licence_current()
    if current is not None and terms.valid_until < current.valid_until:
        raise LicenceError(
            f"This licence ends on {terms.valid_until:%-d %b %Y}, before the current one "
            f"({current.valid_until:%-d %b %Y}). Upload the newest licence."
        )


def licence_is_valid(licence: SubscriptionLicence) -> bool:
    """Whether a stored licence still carries the vendor's signature over the stored terms."""
    try:
        terms = licence_document_verify(licence.document, public_key=settings.LICENCE_PUBLIC_KEY)
    except LicenceError:
        return False
    return (terms.valid_until, terms.device_limit) == (licence.valid_until, licence.device_limit)


def licence_limit_reached() -> LicenceLimitError:
    """The error that stops a sync at the current licence's device limit."""
    licence = licence_current()
    assert licence is not None, "a sync stops at the limit only under a licence"
    return LicenceLimitError(
        licence_limit_text(stored=licence_devices_stored(), device_limit=licence.device_limit)
    )


def licence_devices_admit(
    *,
    account: DEPAccount,
    devices: Sequence[apple_schema.Device],
    licence: SubscriptionLicence | None,
    stored_at_most: int,
) -> tuple[list[apple_schema.Device], int]:
    """The devices of one page of Apple's the licence lets the portal store, in Apple's order,
    and how many new devices it holds back. Changes to stored devices and removals always pass:
    only a device new to the portal counts against the limit.

    `stored_at_most` bounds the devices stored so far (the sync counts once, then adds what it
    stores): a page that fits under the limit even then costs no query; only near the limit are
    the devices counted again and the page's serials looked up.
    """
    if licence is None or stored_at_most + len(devices) <= licence.device_limit:
        return list(devices), 0
    serials = {d.serial_number for d in devices}
    known = set(
        DEPDevice.objects.filter(
            account=account, serial_number__in=serials, removed_at__isnull=True
        ).values_list("serial_number", flat=True)
    )
    room = licence.device_limit - licence_devices_stored()
    admitted: list[apple_schema.Device] = []
    new: set[str] = set()
    held_back: set[str] = set()
    for device in devices:
        serial = device.serial_number
        if device.op_type == "deleted" or serial in known or serial in new:
            admitted.append(device)
        elif len(new) < room:
            new.add(serial)
            admitted.append(device)
        else:
            held_back.add(serial)
    return admitted, len(held_back)
