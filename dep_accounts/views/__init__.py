"""The admin console's pages. Each module is one area of the navigation."""

from __future__ import annotations

from dep_accounts.views.account_add import account_add, account_add_confirm, account_add_token
from dep_accounts.views.accounts import (
    account_detail,
    account_edit,
    account_full_resync,
    account_list,
    account_public_key,
    account_sync,
)
from dep_accounts.views.devices import device_list
from dep_accounts.views.pages import audit_log, dashboard, subscription
from dep_accounts.views.profiles import (
    profile_add,
    profile_assign,
    profile_list,
    profile_make_default,
)

__all__ = [
    "account_add",
    "account_add_confirm",
    "account_add_token",
    "account_detail",
    "account_edit",
    "account_full_resync",
    "account_list",
    "account_public_key",
    "account_sync",
    "audit_log",
    "dashboard",
    "device_list",
    "profile_add",
    "profile_assign",
    "profile_list",
    "profile_make_default",
    "subscription",
]
