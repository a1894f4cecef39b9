"""Single sign-on: the portal role an identity provider's claims grant, applied at every sign-in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from dep_accounts.models import AuditEvent
from dep_accounts.roles import ADMINS, VIEWERS
from dep_accounts.services.audit import audit_record
from dep_accounts.users import User

ROLE_NAMES = {ADMINS: "admin", VIEWERS: "viewer"}


@dataclass(frozen=True)
class RoleMapping:
    """Which values of which claim make an admin or a viewer, for one identity provider."""

    provider_id: str
    provider_name: str
    claim: str
    admin_values: frozenset[str]
    viewer_values: frozenset[str]


def sso_role_mapping(*, provider_id: str) -> RoleMapping:
    """The role mapping configured for a provider (OIDC_<ID>_ROLE_CLAIM and *_VALUES)."""
    app = next(a for a in settings.OIDC_PROVIDERS if a["provider_id"] == provider_id)
    return RoleMapping(
        provider_id=provider_id,
        provider_name=app["name"],
        claim=app["settings"]["role_claim"],
        admin_values=frozenset(app["settings"]["admin_values"]),
        viewer_values=frozenset(app["settings"]["viewer_values"]),
    )


def sso_claim_values(*, claims: dict, claim: str) -> list[str]:
    """The claim's values as strings: IdPs send a list (Okta, Entra ID) or one string."""
    value = claims.get(claim)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return [str(value)]


def sso_role_for_claims(*, mapping: RoleMapping, claims: dict) -> str | None:
    """The portal group the claims grant (admins win over viewers), or None for no role."""
    values = set(sso_claim_values(claims=claims, claim=mapping.claim))
    if values & mapping.admin_values:
        return ADMINS
    if values & mapping.viewer_values:
        return VIEWERS
    return None


@transaction.atomic
def sso_sign_in_refuse(
    *, mapping: RoleMapping, username: str, claims: dict, user: User | None
) -> None:
    """Record that the provider vouched for someone whose claims grant no role.

    A user who had a role here loses it: the IdP no longer grants it.
    """
    if user is not None:
        before = list(user.groups.filter(name__in=[ADMINS, VIEWERS]))
        if before:
            user.groups.remove(*before)
            audit_record(
                action=AuditEvent.Action.ROLE_CHANGED,
                message=(
                    f"{user.get_username()} has no role any more (was "
                    f"{' and '.join(ROLE_NAMES[g.name] for g in before)}): the "
                    f"“{mapping.claim}” claim of {mapping.provider_name} grants none."
                ),
                details={"provider": mapping.provider_id, "role": None},
            )
    audit_record(
        action=AuditEvent.Action.SIGN_IN_REFUSED,
        outcome=AuditEvent.Outcome.FAILURE,
        message=(
            f"Refused {username or 'a user'} signing in through {mapping.provider_name}: "
            f"their “{mapping.claim}” claim grants no role in mdmportal."
        ),
        details={
            "provider": mapping.provider_id,
            "username": username,
            "claim": mapping.claim,
            "values": sso_claim_values(claims=claims, claim=mapping.claim)[:50],
        },
    )


@transaction.atomic
def sso_sign_in_apply(*, user: User, mapping: RoleMapping, role: str) -> None:
    """Give the user exactly the role the provider's claims grant, and audit the sign-in."""
    portal_groups = Group.objects.filter(name__in=[ADMINS, VIEWERS])
    before = sorted(user.groups.filter(name__in=[ADMINS, VIEWERS]).values_list("name", flat=True))
    if before != [role]:
        user.groups.remove(*portal_groups)
        user.groups.add(Group.objects.get(name=role))
        was = " and ".join(ROLE_NAMES[name] for name in before) or "no role"
        audit_record(
            action=AuditEvent.Action.ROLE_CHANGED,
            actor=user,
            message=(
                f"{user.get_username()} is now {ROLE_NAMES[role]} (was {was}), from the "
                f"“{mapping.claim}” claim of {mapping.provider_name}."
            ),
            details={"provider": mapping.provider_id, "role": ROLE_NAMES[role], "was": before},
        )
    audit_record(
        action=AuditEvent.Action.SIGN_IN,
        actor=user,
        message=f"{user.get_username()} signed in through {mapping.provider_name}.",
        details={"provider": mapping.provider_id, "method": "sso"},
    )


def password_sign_in_record(*, user: User, two_factor: bool) -> None:
    audit_record(
        action=AuditEvent.Action.SIGN_IN,
        actor=user,
        message=(
            f"{user.get_username()} signed in with a password"
            f"{' and a two-factor code' if two_factor else ''}."
        ),
        details={"method": "password", "two_factor": two_factor},
    )


def password_sign_in_refuse(*, user: User) -> None:
    audit_record(
        action=AuditEvent.Action.SIGN_IN_REFUSED,
        outcome=AuditEvent.Outcome.FAILURE,
        message=(
            f"Refused {user.get_username()} signing in with a password: LOCAL_LOGIN is off and "
            "only superusers (break-glass) may."
        ),
        details={"method": "password", "username": user.get_username()},
    )


def totp_enrolment_record(*, user: User, recovery_codes: int) -> None:
    audit_record(
        action=AuditEvent.Action.TWO_FACTOR_CHANGED,
        actor=user,
        message=(
            f"{user.get_username()} turned on two-factor authentication (TOTP) with "
            f"{recovery_codes} recovery codes."
        ),
        details={"totp": True, "recovery_codes": recovery_codes},
    )


def sso_users_deactivate_stale(*, days: int, now=None) -> list[str]:
    """Deactivate SSO users who have not signed in through their IdP for `days` days.

    An identity provider does not tell a relying party that someone left; it only stops vouching
    for them. Sessions last SESSION_COOKIE_AGE (two weeks), so anyone still working signs in
    through the IdP again well within `days`; whoever has not is no longer let in by it.
    """
    from allauth.socialaccount.models import SocialAccount

    cutoff = (now or timezone.now()) - timedelta(days=days)
    stale = (
        SocialAccount.objects.filter(user__is_active=True)
        .exclude(user__socialaccount__last_login__gte=cutoff)
        .select_related("user")
    )
    users = {account.user_id: account.user for account in stale}
    deactivated = []
    for user in users.values():
        with transaction.atomic():
            user.is_active = False
            user.save(update_fields=["is_active"])
            audit_record(
                action=AuditEvent.Action.USER_DEACTIVATED,
                message=(
                    f"Deactivated {user.get_username()}: no sign-in through the identity "
                    f"provider for {days} days."
                ),
                details={"username": user.get_username(), "days": days},
            )
        deactivated.append(user.get_username())
    return sorted(deactivated)
