"""Deactivate single sign-on users whom the identity provider no longer lets in."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from dep_accounts.services.sso import sso_users_deactivate_stale


class Command(BaseCommand):
    help = (
        "Deactivate users made by single sign-on who have not signed in through their identity "
        "provider for --days days (SSO_INACTIVE_DAYS). Sessions last two weeks, so anyone the "
        "IdP still lets in signs in again well within that; run it daily (cron, or a beat task)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=settings.SSO_INACTIVE_DAYS)

    def handle(self, *args, days: int, **options) -> None:
        deactivated = sso_users_deactivate_stale(days=days)
        for username in deactivated:
            self.stdout.write(f"deactivated {username}")
        self.stdout.write(
            f"Deactivated {len(deactivated)} SSO user(s) not signed in through their identity "
            f"provider for {days} days."
        )
