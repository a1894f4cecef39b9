"""Inspect a server token file from the command line: metadata as JSON, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dep_accounts.apple import envelope as apple_envelope
from dep_accounts.apple import token as apple_token


class Command(BaseCommand):
    help = "Server token (.p7m) tools. `inspect` decrypts a token and prints its metadata."

    def add_arguments(self, parser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        inspect = subcommands.add_parser("inspect", help="print a token's metadata as JSON")
        inspect.add_argument("token_file", type=Path)
        inspect.add_argument("--private-key", type=Path, required=True, help="PEM private key")
        inspect.add_argument(
            "--certificate",
            type=Path,
            help="the public key certificate uploaded to ABM (optional: derived from the token)",
        )

    def handle(self, *args, subcommand: str, **options) -> None:
        token_path: Path = options["token_file"]
        try:
            data = token_path.read_bytes()
            private_key_pem = options["private_key"].read_bytes()
            certificate = options["certificate"]
            certificate_pem = certificate.read_bytes() if certificate else None
        except OSError as exc:
            raise CommandError(f"Cannot read {exc.filename}: {exc.strerror}.") from exc
        try:
            token = apple_envelope.server_token_decrypt(
                data, private_key_pem=private_key_pem, certificate_pem=certificate_pem
            )
        except apple_token.ServerTokenError as exc:
            raise CommandError(exc.message) from exc
        except ValueError as exc:
            raise CommandError(
                "The private key cannot be used with this token: give the PEM private key of the "
                "key pair whose public key was uploaded to ABM."
            ) from exc
        now = timezone.now()
        self.stdout.write(
            json.dumps(
                {
                    "file": token_path.name,
                    "consumer_key_fingerprint": token.consumer_key_fingerprint,
                    "access_token_expiry": token.access_token_expiry.strftime(
                        apple_token.EXPIRY_FORMAT
                    ),
                    "days_left": token.days_left(now=now),
                    "expired": token.is_expired(now=now),
                },
                indent=2,
            )
        )
        try:
            apple_token.server_token_check_usable(token, now=now)
        except apple_token.ServerTokenError as exc:
            raise CommandError(exc.message) from exc
