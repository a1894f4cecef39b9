"""Edit DEP Account as the tests fill it in, and what a refused upload must leave as it was.

Shared by the page tests and the token corpus tests; not a test module itself.
"""

from __future__ import annotations

from django.urls import reverse

from dep_accounts.models import DEPAccount, ServerToken


def edit_url(account: DEPAccount) -> str:
    return reverse("dep_accounts:edit", args=[account.pk])


def edit_form(account: DEPAccount, **changes) -> dict:
    """The Edit DEP Account form as the page fills it in, with some fields changed."""
    form = {
        "display_name": account.display_name,
        "notification_emails": account.notification_emails,
        "sync_interval_minutes": account.sync_interval_minutes,
        "default_profile": account.default_profile_id or "",
    }
    if account.auto_sync:
        form["auto_sync"] = "on"
    if account.assign_default_profile:
        form["assign_default_profile"] = "on"
    form.update(changes)
    return form


def account_snapshot(account: DEPAccount) -> dict:
    """Everything a refused upload must leave exactly as it was, secrets' bytes included."""
    return {
        "account": DEPAccount.objects.filter(pk=account.pk).values().get(),
        "server_tokens": [
            {**row, "secrets_encrypted": bytes(row["secrets_encrypted"])}
            for row in ServerToken.objects.filter(account=account).order_by("id").values()
        ],
    }
