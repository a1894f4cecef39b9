"""Re-encrypt every stored secret under the newest key in SECRETS_ENCRYPTION_KEYS."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import ngettext

from dep_accounts.encryption import secret_reencrypt
from dep_accounts.models import KeyPair, ServerToken


class Command(BaseCommand):
    help = (
        "Re-encrypt server tokens, private keys and two-factor secrets under the first key of "
        "SECRETS_ENCRYPTION_KEYS; afterwards the older keys can be removed."
    )

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            key_pairs = list(
                KeyPair.objects.select_for_update().only("pk", "private_key_encrypted")
            )
            for key_pair in key_pairs:
                key_pair.private_key_encrypted = secret_reencrypt(key_pair.private_key_encrypted)
            KeyPair.objects.bulk_update(key_pairs, ["private_key_encrypted"], batch_size=500)
            tokens = list(ServerToken.objects.select_for_update().only("pk", "secrets_encrypted"))
            for token in tokens:
                token.secrets_encrypted = secret_reencrypt(token.secrets_encrypted)
            ServerToken.objects.bulk_update(tokens, ["secrets_encrypted"], batch_size=500)
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
        self.stdout.write(
            "Re-encrypted "
            + ngettext("%(count)d private key", "%(count)d private keys", len(key_pairs))
            % {"count": len(key_pairs)}
            + " and "
            + ngettext("%(count)d server token", "%(count)d server tokens", len(tokens))
            % {"count": len(tokens)}
            + " under the newest key."
        )
        self.stdout.write(
            f"Re-encrypted the two-factor secrets of {len(authenticators)} authenticator(s) "
            "(TOTP keys and recovery codes)."
        )
