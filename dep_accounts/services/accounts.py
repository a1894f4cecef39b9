"""DEP accounts: created with the key pair ABM encrypts their tokens for, and their settings."""

from __future__ import annotations

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from dep_accounts.apple import keypair as apple_keypair
from dep_accounts.encryption import secret_encrypt
from dep_accounts.models import AuditEvent, DEPAccount, KeyPair
from dep_accounts.services.audit import audit_record
from dep_accounts.users import User


@sensitive_variables()
def account_create(*, actor: User | None, display_name: str = "") -> DEPAccount:
    """A new DEP account awaiting its first token, with the key pair ABM encrypts tokens for."""
    with transaction.atomic():
        account = DEPAccount.objects.create(display_name=display_name)
        key_pair = apple_keypair.key_pair_generate(common_name=f"mdmportal-dep-{account.pk}")
        KeyPair.objects.create(
            account=account,
            private_key_encrypted=secret_encrypt(key_pair.private_key_pem),
            certificate_pem=key_pair.certificate_pem.decode(),
        )
    return account


def account_update(*, account: DEPAccount, actor: User | None, **fields) -> DEPAccount:
    """Change an account's display name, sync options or notification contacts."""
    changed = [name for name, value in fields.items() if getattr(account, name) != value]
    if not changed:
        return account
    for name in changed:
        setattr(account, name, fields[name])
    account.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action=AuditEvent.Action.ACCOUNT_CHANGED,
        message=f"Changed {', '.join(n.replace('_', ' ') for n in changed)} of “{account.name}”.",
        actor=actor,
        account=account,
    )
    return account
