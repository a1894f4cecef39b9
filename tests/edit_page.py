"""Edit DEP Account as the tests fill it in, and what a refused upload must leave as it was.

Shared by the page tests and the token corpus tests; not a test module itself.
"""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dep_accounts.models import DEPAccount, ServerToken
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import token_check, token_take
from dep_accounts.services.verdict import Intent


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


def account_with_token(abm, admin, *, validity_days: int = 365) -> DEPAccount:
    """A DEP account whose first token, downloaded from applesim's ABM, is taken."""
    account = account_create(actor=admin)
    token_file = abm.token_for(account, validity_days=validity_days)
    check = token_check(account=account, token_file=token_file)
    return token_take(
        account=account, check=check, actor=admin, file_name="first.p7m", intent=Intent.ADD
    ).account


def p7m_upload(data: bytes, name: str = "Springfield MDM_Token_smime.p7m") -> SimpleUploadedFile:
    """A .p7m as the browser uploads it."""
    return SimpleUploadedFile(name, data, content_type="application/pkcs7-mime")
