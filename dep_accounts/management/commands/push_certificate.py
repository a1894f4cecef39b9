"""The MDM push certificate from the command line: the services the console uses.

manage.py push_certificate show [--json]
manage.py push_certificate request --out PushCertificateRequest.plist
manage.py push_certificate upload MDM_Vendor_Certificate.pem [--apple-id ID] [--apple-id-changed]
    [--replace-topic REPLACE]
manage.py push_certificate inspect MDM_Vendor_Certificate.pem
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dep_accounts.api.representations import push_certificate_representation, rfc3339
from dep_accounts.apple import apns
from dep_accounts.links import portal_url
from dep_accounts.management.commands.dep_account import _actor
from dep_accounts.services.intake import TokenFile
from dep_accounts.services.push.intake import (
    VendorCertificateMissingError,
    push_certificate_current,
    push_certificate_intake,
    push_request_make,
)
from dep_accounts.services.push.verdict import PushConfirmations
from dep_accounts.services.verdict import Refusal


class Command(BaseCommand):
    help = (
        "The APNs push certificate for scripts: show, request (writes the signed request), "
        "upload (by the console's rules, the topic guard included) and inspect a .pem file. "
        "Changes are recorded in the audit log as done by the portal itself, or by --user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actor = CommandParser(add_help=False)
        actor.add_argument("--user", metavar="USERNAME", help="the admin the audit log names")
        commands = parser.add_subparsers(dest="subcommand", required=True)
        show = commands.add_parser("show", help="the push certificate and its history")
        show.add_argument("--json", dest="as_json", action="store_true", help="as the API's JSON")
        request = commands.add_parser(
            "request", parents=[actor], help="write the signed push-certificate request"
        )
        request.add_argument("--out", type=Path, required=True, help="where to write it")
        upload = commands.add_parser(
            "upload", parents=[actor], help="upload the .pem the Apple portal issued"
        )
        upload.add_argument("certificate_file", type=Path)
        upload.add_argument("--apple-id", default="", help="the Apple ID used at Apple's portal")
        upload.add_argument("--apple-id-changed", action="store_true")
        upload.add_argument(
            "--replace-topic", default="", metavar="REPLACE|TOPIC", help="replace on purpose"
        )
        inspect = commands.add_parser("inspect", help="print a .pem file's push facts as JSON")
        inspect.add_argument("certificate_file", type=Path)

    def handle(self, *args, subcommand: str, **options) -> None:
        getattr(self, "_" + subcommand)(**options)

    def _show(self, *, as_json: bool, **options) -> None:
        push = push_certificate_current()
        if push is None:
            raise CommandError("No push certificate yet: run `push_certificate request` first.")
        if as_json:
            self.stdout.write(
                json.dumps(push_certificate_representation(push, absolute=portal_url), indent=2)
            )
            return
        self.stdout.write(f"Topic:      {push.topic or '(awaiting certificate)'}")
        self.stdout.write(f"Apple ID:   {push.apple_id or '-'}")
        self.stdout.write(f"State:      {push.get_state_display()}")
        if push.expires_at:
            self.stdout.write(f"Expires:    {push.expires_at:%Y-%m-%d} ({push.days_left()} days)")
        for upload in push.uploads.all():
            mark = "*" if upload.is_current else " "
            self.stdout.write(
                f"{mark} {upload.uploaded_at:%Y-%m-%d} {upload.serial_number} expires "
                f"{upload.expires_at:%Y-%m-%d} by {upload.apple_id}"
            )

    def _request(self, *, out: Path, user: str | None, **options) -> None:
        try:
            signed_request = push_request_make(actor=_actor(user))
        except VendorCertificateMissingError as exc:
            raise CommandError(exc.message) from exc
        try:
            out.write_bytes(signed_request)
        except OSError as exc:
            raise CommandError(f"Cannot write {exc.filename}: {exc.strerror}.") from exc
        self.stdout.write(
            f"Wrote the signed request to {out}. Upload it at {apns.PORTAL} and upload the "
            ".pem it issues with `push_certificate upload`."
        )

    def _upload(self, *, certificate_file: Path, user: str | None, **options) -> None:
        try:
            content = certificate_file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {exc.filename}: {exc.strerror}.") from exc
        confirmed = PushConfirmations(
            apple_id_changed=options["apple_id_changed"],
            topic_replacement=options["replace_topic"],
        )
        try:
            stored = push_certificate_intake(
                upload=TokenFile(certificate_file.name, content),
                actor=_actor(user),
                apple_id=options["apple_id"],
                confirmations=confirmed,
            )
        except Refusal as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        self.stdout.write(
            f"Push certificate saved: topic {stored.topic}, expires {stored.expires_at:%Y-%m-%d}."
        )

    def _inspect(self, *, certificate_file: Path, **options) -> None:
        try:
            certificate = apns.push_certificate_parse(certificate_file.read_bytes())
        except OSError as exc:
            raise CommandError(f"Cannot read {exc.filename}: {exc.strerror}.") from exc
        except apns.PushCertificateError as exc:
            raise CommandError(exc.message) from exc
        now = timezone.now()
        self.stdout.write(
            json.dumps(
                {
                    "file": certificate_file.name,
                    "topic": certificate.topic,
                    "serial_number": certificate.serial_number,
                    "subject": certificate.subject,
                    "issuer": certificate.issuer,
                    "not_before": rfc3339(certificate.not_before),
                    "expires_at": rfc3339(certificate.expires_at),
                    "days_left": certificate.days_left(now=now),
                    "expired": certificate.is_expired(now=now),
                    "sha256_fingerprint": certificate.fingerprint,
                },
                indent=2,
            )
        )
        try:
            apns.push_certificate_check_usable(certificate, now=now)
        except apns.PushCertificateError as exc:
            raise CommandError(exc.message) from exc
