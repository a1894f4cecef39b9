"""Issue a subscription licence signed with the development key, for demos and tests.

    issue_licence --days 30 --install                  valid from now for 30 days
    issue_licence --days -1 --replace                  expired yesterday (a year's licence)
    issue_licence --valid-from 2030-01-01 --valid-until 2031-01-01 --replace   not valid yet

An expired, not yet valid or older licence is refused at install unless `--replace` asks for
it explicitly: that is how the demo shows "subscription expired: DEP sync blocked".
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dep_accounts.services.licence import LicenceError, licence_document_issue, licence_install

DEFAULT_DAYS = 365


def _moment(text: str) -> datetime:
    """A date (midnight UTC) or an ISO-8601 date and time (UTC unless it names its zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write it as 2030-01-31 or 2030-01-31T09:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


class Command(BaseCommand):
    help = "Issue a subscription licence with the development signing key (DEBUG only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--customer", default="Demo Organisation")
        parser.add_argument("--plan", default="Business")
        parser.add_argument("--devices", type=int, default=10000)
        parser.add_argument(
            "--days",
            type=int,
            help=f"validity from now, in days ({DEFAULT_DAYS} unless --valid-until); "
            "a negative number issues a licence that has expired",
        )
        parser.add_argument("--valid-from", type=_moment, help="start, e.g. 2030-01-31")
        parser.add_argument("--valid-until", type=_moment, help="end, e.g. 2031-01-31")
        parser.add_argument("--install", action="store_true", help="install it as well")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="install it even when it is expired, not valid yet or older than the current one",
        )

    def handle(self, *args, **options) -> None:
        if not settings.LICENCE_SIGNING_KEY:
            raise CommandError(
                "No development signing key: licences are issued by the vendor in production."
            )
        if options["days"] is not None and options["valid_until"] is not None:
            raise CommandError("Give --days or --valid-until, not both.")
        valid_from, valid_until = _validity(
            now=timezone.now(),
            days=options["days"],
            valid_from=options["valid_from"],
            valid_until=options["valid_until"],
        )
        document = licence_document_issue(
            signing_key=settings.LICENCE_SIGNING_KEY,
            customer=options["customer"],
            plan=options["plan"],
            device_limit=options["devices"],
            valid_from=valid_from,
            valid_until=valid_until,
        )
        if options["install"] or options["replace"]:
            try:
                licence_install(document=document, actor=None, replace=options["replace"])
            except LicenceError as error:
                hint = "" if options["replace"] else " To install it anyway, add --replace."
                raise CommandError(f"{error.message}{hint}") from None
        self.stdout.write(document)


def _validity(
    *, now: datetime, days: int | None, valid_from: datetime | None, valid_until: datetime | None
) -> tuple[datetime, datetime]:
    """From now (or --valid-from) for --days; a licence that ended already ran for a year."""
    if valid_until is None:
        valid_until = (valid_from or now) + timedelta(days=DEFAULT_DAYS if days is None else days)
    if valid_from is None:
        valid_from = now if valid_until > now else valid_until - timedelta(days=DEFAULT_DAYS)
    return valid_from, valid_until
