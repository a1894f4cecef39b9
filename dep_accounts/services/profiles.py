"""Enrollment profiles: define them at Apple, make one an account's default, assign devices."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import ngettext

from dep_accounts.apple import client as apple_client
from dep_accounts.apple import dep_errors
from dep_accounts.errors import DomainError
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice, EnrollmentProfile
from dep_accounts.services.apple_access import (
    dep_client_for_token,
    server_token_credentials,
    sync_blocker,
)
from dep_accounts.services.audit import actor_user, audit_record
from dep_accounts.services.default_profile import ASSIGN_BATCH
from dep_accounts.services.sync import SyncUnavailableError
from dep_accounts.users import User


class ProfileError(DomainError):
    """A profile that cannot be defined or assigned now; `message` says why."""


@dataclass(frozen=True)
class ProfileAssignOutcome:
    assigned: int
    failed: dict[str, str] = field(default_factory=dict)


def _client_for(account: DEPAccount) -> apple_client.DEPClient:
    blocker = sync_blocker(account=account)
    if blocker:
        raise SyncUnavailableError(blocker)
    current = account.server_tokens.get(is_current=True)
    return dep_client_for_token(server_token_credentials(current))


def profile_create(
    *,
    account: DEPAccount,
    actor: User | None,
    name: str,
    url: str,
    is_supervised: bool = True,
    is_mandatory: bool = True,
    is_mdm_removable: bool = False,
    allow_pairing: bool = True,
    department: str = "",
    support_phone_number: str = "",
    support_email_address: str = "",
) -> EnrollmentProfile:
    """Define an enrollment profile at Apple for the account and keep it here."""
    client = _client_for(account)
    definition = {
        "profile_name": name,
        "url": url,
        "is_supervised": is_supervised,
        "is_mandatory": is_mandatory,
        "is_mdm_removable": is_mdm_removable,
        "allow_pairing": allow_pairing,
        "department": department,
        "support_phone_number": support_phone_number,
        "support_email_address": support_email_address,
    }
    try:
        defined = client.profile_define({k: v for k, v in definition.items() if v != ""})
    except dep_errors.DEPError as exc:
        raise ProfileError(f"Apple did not accept the profile: {exc.message}") from exc
    profile = EnrollmentProfile.objects.create(
        account=account,
        profile_uuid=defined.profile_uuid,
        name=name,
        url=url,
        is_supervised=is_supervised,
        is_mandatory=is_mandatory,
        is_mdm_removable=is_mdm_removable,
        allow_pairing=allow_pairing,
        department=department,
        support_phone_number=support_phone_number,
        support_email_address=support_email_address,
        created_by=actor_user(actor),
    )
    audit_record(
        action=AuditEvent.Action.PROFILE_CHANGED,
        message=f"Defined enrollment profile “{name}” for “{account.name}”.",
        actor=actor,
        account=account,
        details={"profile_uuid": profile.profile_uuid},
    )
    return profile


def profile_make_default(
    *, profile: EnrollmentProfile, actor: User | None, assign_to_new_devices: bool
) -> None:
    account = profile.account
    with transaction.atomic():
        DEPAccount.objects.filter(pk=account.pk).update(
            default_profile=profile, assign_default_profile=assign_to_new_devices
        )
        audit_record(
            action=AuditEvent.Action.PROFILE_CHANGED,
            message=f"“{profile.name}” is now the default profile of “{account.name}”"
            + (", assigned to new devices automatically." if assign_to_new_devices else "."),
            actor=actor,
            account=account,
        )


def profile_assign(
    *, profile: EnrollmentProfile, serials: list[str], actor: User | None
) -> ProfileAssignOutcome:
    """Assign the profile at Apple to the given devices of its account."""
    account = profile.account
    serials = sorted({s.strip().upper() for s in serials if s.strip()})
    if not serials:
        raise ProfileError("Choose at least one device.")
    known = set(
        DEPDevice.objects.filter(
            account=account, serial_number__in=serials, removed_at__isnull=True
        ).values_list("serial_number", flat=True)
    )
    failed = {s: "not a device of this DEP account" for s in serials if s not in known}
    client = _client_for(account)
    assigned = []
    for start in range(0, len(known), ASSIGN_BATCH):
        batch = sorted(known)[start : start + ASSIGN_BATCH]
        try:
            result = client.profile_assign(profile_uuid=profile.profile_uuid, serials=batch)
        except dep_errors.DEPError as exc:
            raise ProfileError(f"Apple did not assign the profile: {exc.message}") from exc
        for serial, status in result.devices.items():
            if status == "SUCCESS":
                assigned.append(serial)
            else:
                failed[serial] = status.replace("_", " ").lower()
    DEPDevice.objects.filter(account=account, serial_number__in=assigned).update(
        profile_uuid=profile.profile_uuid, profile_status="assigned"
    )
    audit_record(
        action=AuditEvent.Action.PROFILE_CHANGED,
        message=ngettext(
            "Assigned “%(name)s” to %(count)d device",
            "Assigned “%(name)s” to %(count)d devices",
            len(assigned),
        )
        % {"name": profile.name, "count": len(assigned)}
        + (f"; {len(failed)} not assigned." if failed else "."),
        actor=actor,
        account=account,
        outcome=AuditEvent.Outcome.SUCCESS if not failed else AuditEvent.Outcome.FAILURE,
        details={"failed": dict(list(failed.items())[:50])},
    )
    return ProfileAssignOutcome(assigned=len(assigned), failed=failed)
