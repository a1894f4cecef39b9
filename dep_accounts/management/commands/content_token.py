"""Apps and Books content tokens from the command line: the services the console uses.

manage.py content_token list --json
manage.py content_token show 3
manage.py content_token upload ~/Downloads/sToken_for_Springfield.vpptoken          (a new one)
manage.py content_token upload --renew 3 ~/Downloads/sToken_for_Springfield.vpptoken
manage.py content_token bulk-renew ~/Downloads/*.vpptoken    (each matched to its location)
manage.py content_token inspect sToken_for_Springfield.vpptoken   (the file alone, no Apple)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.api.credential_representations import (
    content_token_detail_representation,
    content_token_representation,
)
from dep_accounts.apple import vpp as apple_vpp
from dep_accounts.links import portal_url
from dep_accounts.management.commands.dep_account import command_actor
from dep_accounts.models import ContentToken
from dep_accounts.services.content_tokens.bulk import content_tokens_bulk_renew
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.content_tokens.verdict import ContentTokenConfirmations
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.verdict import Refusal


class Command(BaseCommand):
    help = (
        "Apps and Books content tokens for scripts: list, show, upload (a new location, or "
        "--renew ID, by the console's rules), bulk-renew (each file matched to its location) "
        "and inspect (a .vpptoken file's metadata, never "
        "the token). Changes are recorded in the audit log as done by the portal, or by --user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True)
        listing = commands.add_parser("list", help="content tokens, soonest expiry first")
        listing.add_argument("--json", dest="as_json", action="store_true", help="as the API")
        show = commands.add_parser("show", help="one content token and its uploads")
        show.add_argument("content_token_id", type=int, metavar="ID")
        show.add_argument("--json", dest="as_json", action="store_true", help="as the API")
        upload = commands.add_parser("upload", help="add a content token, or renew one")
        upload.add_argument("token_file", type=Path, metavar="FILE", help="the .vpptoken")
        upload.add_argument("--renew", type=int, metavar="ID", help="the content token renewed")
        upload.add_argument("--apple-id", default="", help="who downloaded it in ABM")
        upload.add_argument(
            "--take-over",
            action="store_true",
            help="confirm taking the location over from the MDM that manages it now",
        )
        upload.add_argument(
            "--user", metavar="USERNAME", help="the admin the audit log names (default: none)"
        )
        bulk = commands.add_parser(
            "bulk-renew", help="renew the location each .vpptoken is for, matched by Apple"
        )
        bulk.add_argument("token_files", type=Path, nargs="+", metavar="FILE")
        bulk.add_argument(
            "--user", metavar="USERNAME", help="the admin the audit log names (default: none)"
        )
        inspect = commands.add_parser("inspect", help="a .vpptoken's metadata as JSON")
        inspect.add_argument("token_file", type=Path, metavar="FILE")

    def handle(self, *args, subcommand: str, **options) -> None:
        handlers: dict[str, Callable[..., None]] = {
            "list": self.content_token_list,
            "show": self.content_token_show,
            "upload": self.content_token_upload,
            "bulk-renew": self.content_tokens_bulk_renew,
            "inspect": self.content_token_inspect,
        }
        handlers[subcommand](**options)

    def content_token_list(self, *, as_json: bool, **options) -> None:
        content_tokens = ContentToken.objects.defer("credential_encrypted")
        if as_json:
            self._json(
                [content_token_representation(c, absolute=portal_url) for c in content_tokens]
            )
            return
        self.stdout.write(f"{'ID':>5}  {'STATE':<12}  {'EXPIRES':<10}  {'DAYS':>5}  LOCATION")
        for content_token in content_tokens:
            self.stdout.write(
                f"{content_token.pk:>5}  {content_token.state:<12}  "
                f"{content_token.expires_at:%Y-%m-%d}  {content_token.days_left():>5}  "
                f"{content_token.name}"
            )

    def content_token_show(self, *, content_token_id: int, as_json: bool, **options) -> None:
        detail = content_token_detail_representation(
            _content_token_get(content_token_id), absolute=portal_url
        )
        if as_json:
            self._json(detail)
            return
        for field in ("id", "location_name", "location_uid", "country", "org_name", "apple_id"):
            self.stdout.write(f"{field}: {detail[field] or '-'}")
        self.stdout.write(f"state: {detail['state']}. {detail['state_detail']}".strip())
        self.stdout.write(f"expires_at: {detail['expires_at']} ({detail['days_left']} days)")
        self.stdout.write(f"licences: {detail['licences_assigned']} of {detail['licences_total']}")
        for entry in detail["uploads"]:
            self.stdout.write(
                f"  uploaded {entry['uploaded_at']} by {entry['uploaded_by'] or 'mdmportal'}: "
                f"expires {entry['expires_at']}, {entry['fingerprint']}"
            )

    @sensitive_variables()
    def content_token_upload(
        self,
        *,
        token_file: Path,
        renew: int | None,
        apple_id: str,
        take_over: bool,
        user: str | None,
        **options,
    ) -> None:
        actor = command_actor(user)
        renewed = _content_token_get(renew) if renew is not None else None
        content, size = _read(token_file)
        try:
            content_token = content_token_intake(
                content_token=renewed,
                upload=TokenFile(token_file.name, content, size=size),
                actor=actor,
                apple_id=apple_id[:254],
                confirmations=ContentTokenConfirmations(take_over=take_over),
            )
        except Refusal as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        self.stdout.write(
            f"Content token {content_token.pk} of “{content_token.name}” taken: valid until "
            f"{content_token.expires_at:%Y-%m-%d} ({content_token.days_left()} days)."
        )

    @sensitive_variables()
    def content_tokens_bulk_renew(self, *, token_files: list[Path], user: str | None, **o) -> None:
        actor = command_actor(user)
        files = []
        for path in token_files:
            content, size = _read(path)
            files.append(TokenFile(path.name, content, size=size))
        results = content_tokens_bulk_renew(token_files=files, actor=actor)
        for result in results:
            if result.problem or result.content_token is None:
                self.stderr.write(f"{result.file_name}: not renewed. {result.problem}")
            else:
                self.stdout.write(
                    f"{result.file_name}: renewed “{result.content_token.name}”, valid until "
                    f"{result.content_token.expires_at:%Y-%m-%d}."
                )
        refused = sum(1 for result in results if result.problem)
        if refused:
            raise CommandError(f"{refused} of {len(results)} files were not renewed.")

    @sensitive_variables()
    def content_token_inspect(self, *, token_file: Path, **options) -> None:
        content, _size = _read(token_file)
        try:
            token = apple_vpp.content_token_decode(content)
        except apple_vpp.ContentTokenError as exc:
            raise CommandError(exc.message) from exc
        now = timezone.now()
        self._json(
            {
                "file": token_file.name,
                "org_name": token.org_name,
                "fingerprint": token.fingerprint,
                "expires_at": token.expires_at.isoformat(),
                "days_left": token.days_left(now=now),
                "expired": token.is_expired(now=now),
            }
        )
        try:
            apple_vpp.content_token_check_usable(token, now=now)
        except apple_vpp.ContentTokenError as exc:
            raise CommandError(exc.message) from exc

    def _json(self, document: object) -> None:
        self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))


def _read(token_file: Path) -> tuple[bytes, int]:
    try:
        with token_file.open("rb") as opened:
            # One byte more than a content token may have is enough to refuse it.
            content = opened.read(settings.VPP_TOKEN_MAX_BYTES + 1)
            return content, os.fstat(opened.fileno()).st_size
    except OSError as exc:
        raise CommandError(f"Cannot read {exc.filename}: {exc.strerror}.") from exc


def _content_token_get(content_token_id: int) -> ContentToken:
    content_token = ContentToken.objects.filter(pk=content_token_id).first()
    if content_token is None:
        raise CommandError(f"There is no content token with id {content_token_id}.")
    return content_token
