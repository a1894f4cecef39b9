"""Seed the embedded default's demo, once: users, a licence, ABM in applesim, one DEP account.

The DEP account's token expires in 10 days so the banner shows at first login. The admin's
password is made on first seed, kept in var/ (readable by its owner only) and printed each start.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.utils import timezone

from applesim.testing import SimControl
from dep_accounts.roles import ADMINS, VIEWERS
from dep_accounts.services.accounts import account_create
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.intake import token_check, token_take
from dep_accounts.services.licence import licence_document_issue, licence_install
from dep_accounts.services.verdict import Intent

ORGANISATION = "Springfield Public Schools"
APPLE_IDS = ["it.admin@springfield.example", "deputy.it@springfield.example"]


class Command(BaseCommand):
    help = "Seed the demo of the embedded default (only when the portal has no users yet)."

    def handle(self, *args, **options) -> None:
        credentials = settings.VAR_DIR / "demo-admin-password"
        User = get_user_model()
        if User.objects.exists():
            if credentials.exists():
                self._credentials_print(credentials.read_text().strip())
            return
        password = secrets.token_urlsafe(12)
        credentials.write_text(password)
        credentials.chmod(0o600)
        admin = User.objects.create_user("admin", "admin@springfield.example", password)
        admin.groups.add(Group.objects.get(name=ADMINS))
        viewer = User.objects.create_user("viewer", "viewer@springfield.example", password)
        viewer.groups.add(Group.objects.get(name=VIEWERS))

        now = timezone.now()
        licence_install(
            document=licence_document_issue(
                signing_key=settings.LICENCE_SIGNING_KEY,
                customer=ORGANISATION,
                plan="Education",
                device_limit=10000,
                valid_from=now,
                valid_until=now + timedelta(days=365),
            ),
            actor=None,
        )

        abm = SimControl(settings.DEP_API_URL)
        abm.reset()
        org_id = abm.organisation_create(ORGANISATION, apple_ids=APPLE_IDS, org_type="edu")
        springfield = abm.server_create(org_id, "Springfield MDM")
        shelbyville = abm.server_create(org_id, "Shelbyville Campus MDM")
        abm.devices_add(springfield, 3000)
        abm.devices_add(shelbyville, 800)

        account = account_create(actor=admin, display_name="Springfield district")
        abm.sign_in(APPLE_IDS[0], org_id=org_id)
        abm.public_key_upload(springfield, account.key_pair.certificate_pem.encode())
        token_file = abm.token_download(springfield, validity_days=10)
        check = token_check(account=account, token_file=token_file)
        token_take(
            account=account, check=check, actor=admin, file_name="smime.p7m", intent=Intent.ADD
        )
        token_states_refresh()
        banner_refresh()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo seeded: ABM organisation “{ORGANISATION}” in applesim with 2 MDM servers "
                "and 3,800 devices; DEP account “Springfield district” whose token expires "
                "in 10 days."
            )
        )
        self._credentials_print(password)

    def _credentials_print(self, password: str) -> None:
        self.stdout.write(
            self.style.WARNING(f"Sign in as admin / {password}  (read-only: viewer / {password})")
        )
