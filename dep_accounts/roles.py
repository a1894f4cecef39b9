"""Who may do what: admins change everything, viewers read; nobody else sees anything."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from dep_accounts.users import User

ADMINS = "admins"
VIEWERS = "viewers"
VIEW_PERMISSION = "dep_accounts.view_depaccount"
MANAGE_PERMISSION = "dep_accounts.manage_dep_accounts"

_VIEW_CODENAMES = [
    "view_depaccount",
    "view_depdevice",
    "view_enrollmentprofile",
    "view_subscriptionlicence",
    "view_auditevent",
    "view_servertoken",
]


def can_view(user: User | AnonymousUser) -> bool:
    return user.is_authenticated and user.has_perm(VIEW_PERMISSION)


def can_manage(user: User | AnonymousUser) -> bool:
    return user.is_authenticated and user.has_perm(MANAGE_PERMISSION)


def roles_ensure(**kwargs) -> None:
    """Create the two groups with their permissions (after every migrate, and after a flush)."""
    from django.contrib.auth.models import Group, Permission

    permissions = Permission.objects.filter(content_type__app_label="dep_accounts")
    viewers, _ = Group.objects.get_or_create(name=VIEWERS)
    viewers.permissions.set(permissions.filter(codename__in=_VIEW_CODENAMES))
    admins, _ = Group.objects.get_or_create(name=ADMINS)
    admins.permissions.set(
        permissions.filter(codename__in=[*_VIEW_CODENAMES, MANAGE_PERMISSION.split(".")[1]])
    )
