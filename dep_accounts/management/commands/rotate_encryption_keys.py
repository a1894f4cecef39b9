"""Re-encrypt every stored secret under the newest key in SECRETS_ENCRYPTION_KEYS."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.core.management.base import BaseCommand
from django.db import transaction

from dep_accounts.encryption import encrypted_fields, secret_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column (private keys, server tokens, webhook secrets) and "
        "the two-factor secrets under the first key of SECRETS_ENCRYPTION_KEYS; afterwards the "
        "older keys can be removed."
    )

    def handle(self, *args, **options) -> None:
        counts: list[str] = []
        with transaction.atomic():
            for model, field in encrypted_fields():
                # Generic over the models: every one has `objects` as its default manager.
                rows = list(model._default_manager.select_for_update().only("pk", field))
                for row in rows:
                    setattr(row, field, secret_reencrypt(getattr(row, field)))
                model._default_manager.bulk_update(rows, [field], batch_size=500)
                meta = model._meta
                name = meta.verbose_name if len(rows) == 1 else meta.verbose_name_plural
                counts.append(f"{len(rows)} {name} ({field})")
            authenticators = list(Authenticator.objects.select_for_update().only("pk", "data"))
            for authenticator in authenticators:
                # allauth keeps a TOTP key as "secret" and recovery codes as a "seed", both
                # encrypted by dep_accounts.sign_in.MFAAdapter.
                for field in ("secret", "seed"):
                    if field in authenticator.data:
                        authenticator.data[field] = secret_reencrypt(
                            authenticator.data[field].encode()
                        ).decode()
            Authenticator.objects.bulk_update(authenticators, ["data"], batch_size=500)
        self.stdout.write(f"Re-encrypted under the newest key: {', '.join(counts)}.")
        self.stdout.write(
            f"Re-encrypted the two-factor secrets of {len(authenticators)} authenticator(s) "
            "(TOTP keys and recovery codes)."
        )
