"""Issue a subscription licence signed with the development key, for demos and tests."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from dep_accounts.services.licence import licence_document_issue, licence_install


class Command(BaseCommand):
    help = "Issue a subscription licence with the development signing key (DEBUG only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--customer", default="Demo Organisation")
        parser.add_argument("--plan", default="Business")
        parser.add_argument("--devices", type=int, default=10000)
        parser.add_argument("--days", type=int, default=365, help="validity from now, in days")
        parser.add_argument("--install", action="store_true", help="install it as well")

    @sensitive_variables()
    def handle(self, *args, **options) -> None:
        if not settings.LICENCE_SIGNING_KEY:
            raise CommandError(
                "No development signing key: licences are issued by the vendor in production."
            )
        now = timezone.now()
        document = licence_document_issue(
            signing_key=settings.LICENCE_SIGNING_KEY,
            customer=options["customer"],
            plan=options["plan"],
            device_limit=options["devices"],
            valid_from=now,
            valid_until=now + timedelta(days=options["days"]),
        )
        if options["install"]:
            licence_install(document=document, actor=None)
        self.stdout.write(document)
