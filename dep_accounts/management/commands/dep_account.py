"""DEP accounts from the command line, for scripted renewals: the services the console uses.

manage.py dep_account create --name "Springfield" --public-key-out springfield.pem
manage.py dep_account upload-token 3 ~/Downloads/smime.p7m
manage.py dep_account list --json
manage.py dep_account full-resync 3
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dep_accounts.api.representations import (
    account_detail_representation,
    account_representation,
)
from dep_accounts.links import portal_url
from dep_accounts.models import DEPAccount
from dep_accounts.plain_text import name_validate
from dep_accounts.roles import can_manage
from dep_accounts.selectors import dep_accounts_list
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import TokenFile, token_intake
from dep_accounts.services.sync import SyncUnavailableError
from dep_accounts.services.sync_requests import account_full_resync_request, account_sync_request
from dep_accounts.services.verdict import Confirmations, Refusal
from dep_accounts.users import User


class Command(BaseCommand):
    help = (
        "DEP accounts for scripts: list, show, create (writes the public key), upload-token "
        "(the first token or a renewal, by the console's rules) and sync. Changes are recorded "
        "in the audit log as done by the portal itself, or by --user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actor = CommandParser(add_help=False)
        actor.add_argument(
            "--user", metavar="USERNAME", help="the admin the audit log names (default: none)"
        )
        commands = parser.add_subparsers(dest="subcommand", required=True)
        listing = commands.add_parser("list", help="DEP accounts, soonest expiry first")
        listing.add_argument(
            "--json", dest="as_json", action="store_true", help="as the API's JSON"
        )
        show = commands.add_parser("show", help="one DEP account and its token history")
        show.add_argument("account_id", type=int, metavar="ID")
        show.add_argument("--json", dest="as_json", action="store_true", help="as the API's JSON")
        create = commands.add_parser(
            "create", parents=[actor], help="add a DEP account and write its public key"
        )
        create.add_argument("--name", default="", help="a display name")
        create.add_argument(
            "--public-key-out",
            type=Path,
            required=True,
            metavar="FILE",
            help="where to write the public key (.pem) to upload to the MDM server in ABM",
        )
        upload = commands.add_parser(
            "upload-token",
            parents=[actor],
            help="add the first server token of an account, or renew its token",
        )
        upload.add_argument("account_id", type=int, metavar="ID")
        upload.add_argument("token_file", type=Path, metavar="FILE", help="the .p7m from ABM")
        upload.add_argument(
            "--apple-id-changed",
            action="store_true",
            help="confirm that the Apple ID managing this MDM server in ABM has changed",
        )
        sync = commands.add_parser("sync", parents=[actor], help="queue a sync with Apple")
        sync.add_argument("account_id", type=int, metavar="ID")
        resync = commands.add_parser(
            "full-resync",
            parents=[actor],
            help="discard the device cursor and queue a sync that fetches every device again",
        )
        resync.add_argument("account_id", type=int, metavar="ID")

    def handle(self, *args, subcommand: str, **options) -> None:
        handlers: dict[str, Callable[..., None]] = {
            "list": self.account_list,
            "show": self.account_show,
            "create": self.account_create,
            "upload-token": self.token_upload,
            "sync": self.account_sync,
            "full-resync": self.account_full_resync,
        }
        handlers[subcommand](**options)

    def account_list(self, *, as_json: bool, **options) -> None:
        accounts = dep_accounts_list()
        if as_json:
            self._json([account_representation(a, absolute=portal_url) for a in accounts])
            return
        self.stdout.write(f"{'ID':>5}  {'STATE':<18}  {'EXPIRES':<10}  {'DAYS':>5}  NAME")
        for account in accounts:
            expires = f"{account.token_expires_at:%Y-%m-%d}" if account.token_expires_at else "-"
            days = account.days_left()
            self.stdout.write(
                f"{account.pk:>5}  {account.state:<18}  {expires:<10}  "
                f"{'-' if days is None else days:>5}  {account.name}"
            )

    def account_show(self, *, account_id: int, as_json: bool, **options) -> None:
        account = _account_get(account_id)
        detail = account_detail_representation(account, absolute=portal_url)
        if as_json:
            self._json(detail)
            return
        for field in ("id", "name", "server_name", "server_uuid", "org_name", "admin_apple_id"):
            self.stdout.write(f"{field}: {detail[field] or '-'}")
        self.stdout.write(f"state: {account.get_state_display()}. {account.state_detail}".strip())
        self.stdout.write(f"token_expires_at: {detail['token_expires_at'] or '-'}")
        self.stdout.write(
            f"days_left: {'-' if account.days_left() is None else detail['days_left']}"
        )
        self.stdout.write(f"last_sync: {detail['last_sync_result']} {detail['last_sync_at'] or ''}")
        self.stdout.write(f"device_count: {detail['device_count']}")
        for entry in detail["token_history"]:
            marker = "*" if entry["is_current"] else " "
            self.stdout.write(
                f"{marker} token uploaded {entry['uploaded_at']} by "
                f"{entry['uploaded_by'] or 'mdmportal'}: {entry['admin_apple_id']}, expires "
                f"{entry['access_token_expiry']}, {entry['consumer_key_fingerprint']}"
            )

    def account_create(self, *, name: str, public_key_out: Path, user: str | None, **options):
        actor = command_actor(user)
        try:
            name_validate(name)
        except ValidationError as exc:
            raise CommandError(f"--name: {exc.messages[0]}") from exc
        account = account_create(actor=actor, display_name=name.strip())
        try:
            public_key_out.write_text(account.key_pair.certificate_pem)
        except OSError as exc:
            raise CommandError(
                f"DEP account {account.pk} was created, but its public key could not be written "
                f"to {exc.filename}: {exc.strerror}. Run `dep_account create` again or download "
                "the key from the console."
            ) from exc
        self.stdout.write(f"{account.pk}")
        self.stderr.write(
            f"Created DEP account {account.pk}. Upload {public_key_out} to the MDM server in "
            f"Apple Business Manager, download its token, then run: "
            f"manage.py dep_account upload-token {account.pk} <file.p7m>"
        )

    def token_upload(
        self, *, account_id: int, token_file: Path, apple_id_changed: bool, user: str | None, **o
    ) -> None:
        actor = command_actor(user)
        account = _account_get(account_id)
        try:
            with token_file.open("rb") as opened:
                # One byte more than a token may have is enough for the intake to refuse it.
                content = opened.read(settings.DEP_TOKEN_MAX_BYTES + 1)
                size = os.fstat(opened.fileno()).st_size
        except OSError as exc:
            raise CommandError(f"Cannot read {exc.filename}: {exc.strerror}.") from exc
        try:
            token_intake(
                account=account,
                upload=TokenFile(token_file.name, content, size=size),
                actor=actor,
                confirmations=Confirmations(apple_id_changed=apple_id_changed),
            )
        except Refusal as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        self.stdout.write(
            f"Server token of “{account.name}” taken: valid until "
            f"{account.token_expires_at:%Y-%m-%d} ({account.days_left()} days)."
        )

    def account_sync(self, *, account_id: int, user: str | None, **options) -> None:
        actor = command_actor(user)
        account = _account_get(account_id)
        try:
            account_sync_request(account=account, actor=actor)
        except SyncUnavailableError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Sync of “{account.name}” queued.")

    def account_full_resync(self, *, account_id: int, user: str | None, **options) -> None:
        actor = command_actor(user)
        account = _account_get(account_id)
        try:
            account_full_resync_request(account=account, actor=actor)
        except SyncUnavailableError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Device cursor of “{account.name}” discarded: a full re-sync is queued.")

    def _json(self, document: object) -> None:
        self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))


def _account_get(account_id: int) -> DEPAccount:
    account = DEPAccount.objects.filter(pk=account_id).first()
    if account is None:
        raise CommandError(f"There is no DEP account with id {account_id}.")
    return account


def command_actor(username: str | None) -> User | None:
    """The admin a change is recorded as done by; None for the portal itself."""
    if username is None:
        return None
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None or not user.is_active:
        raise CommandError(f"There is no active user “{username}”.")
    if not can_manage(user):
        raise CommandError(f"“{username}” is not an admin of the portal.")
    return user
