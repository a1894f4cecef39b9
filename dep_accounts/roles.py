"""Who may do what: admins change everything, viewers read; nobody else sees anything."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

ADMINS = "admins"
VIEWERS = "viewers"
VIEW_PERMISSION = "dep_accounts.view_depaccount"
MANAGE_PERMISSION = "dep_accounts.manage_dep_accounts"


def can_view(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.has_perm(VIEW_PERMISSION)


def can_manage(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.has_perm(MANAGE_PERMISSION)
