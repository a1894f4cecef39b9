"""Seed the embedded default's demo: users, a licence, ABM in applesim, one DEP account, and
the APNs push certificate.

Seeding is one transaction: a start that fails half-way (applesim gone, a refusal) leaves the
portal as it was, and the next start seeds again. A part that is missing is completed: the
demo DEP account is added while the portal has never had one, whatever happened before.

The DEP account's token expires in 10 days so the banner shows at first login; the push
certificate, made by applesim's Push Certificates Portal for an MDM vendor certificate it
issues (kept in var/ as APNS_VENDOR_CERTIFICATE), in 40 days. The admin's
password is made on first seed, kept in var/ (readable by its owner only) and printed each start.

applesim is a separate service: the demo plays Apple's part over its HTTP control API (/_sim/),
as any other MDM project would, and imports nothing of it.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from dep_accounts.models import AuditEvent, DEPAccount, PushCertificate
from dep_accounts.roles import ADMINS, VIEWERS
from dep_accounts.selectors import licence_current
from dep_accounts.services.accounts import account_create
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.intake import TokenFile, token_check, token_take
from dep_accounts.services.licence import LicenceError, licence_document_issue, licence_install
from dep_accounts.services.push.intake import (
    VendorCertificateMissingError,
    push_certificate_intake,
    push_request_make,
)
from dep_accounts.services.verdict import Intent, Refusal

ORGANISATION = "Springfield Public Schools"
APPLE_IDS = ["it.admin@springfield.example", "deputy.it@springfield.example"]


class DemoSeedError(Exception):
    """applesim could not play its part; the message says what to do."""


class ABMControl:
    """The few calls of applesim's control API that the demo needs."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(
        self, path: str, payload: Any = None, *, raw: bytes | None = None
    ) -> tuple[bytes, Message]:
        """POST to /_sim/<path>; the answer's body and headers."""
        request = urllib.request.Request(  # noqa: S310 (applesim's own http URL)
            f"{self.url}/_sim/{path}",
            data=raw if raw is not None else json.dumps(payload or {}).encode(),
            method="POST",
            headers={"Content-Type": "application/octet-stream" if raw else "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (as above)
                return response.read(), response.headers
        except urllib.error.HTTPError as error:
            raise DemoSeedError(
                f"applesim at {self.url} refused {path} ({error.code}): "
                f"{error.read()[:300].decode(errors='replace')}"
            ) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise DemoSeedError(
                f"applesim did not answer at {self.url} ({getattr(reason, 'strerror', reason)}). "
                "Start it (python -m applesim) or set DEP_API_URL to where it runs."
            ) from None

    def json(self, path: str, payload: Any = None) -> dict[str, Any]:
        body, _headers = self.call(path, payload)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise DemoSeedError(
                f"{self.url} answered /_sim/{path} with something else than applesim's JSON: "
                "is another program listening there?"
            )
        return answer


class Command(BaseCommand):
    help = "Seed the demo of the embedded default (what is missing of it)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-credentials", action="store_true", help="do not print the demo's credentials"
        )

    def handle(self, *args, no_credentials: bool = False, **options) -> None:
        try:
            with transaction.atomic():
                self._users_seed()
                if licence_current() is None:
                    self._licence_seed()
                if not _portal_had_an_account():
                    self._abm_seed()
                if _demo_vendor_path() and not _portal_had_a_push_certificate():
                    self._push_seed()
        except (DemoSeedError, LicenceError, Refusal, VendorCertificateMissingError) as error:
            raise CommandError(f"The demo was not seeded (nothing was kept): {error}") from None
        line = credentials_line()
        if line and not no_credentials:
            self.stdout.write(self.style.WARNING(line))

    def _users_seed(self) -> None:
        """The demo's admin and viewer, when the portal has no users yet."""
        User = get_user_model()
        if User.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_user("admin", "admin@springfield.example", password)
        admin.groups.add(Group.objects.get(name=ADMINS))
        viewer = User.objects.create_user("viewer", "viewer@springfield.example", password)
        viewer.groups.add(Group.objects.get(name=VIEWERS))
        # Written once the users are committed, so the file never names a password that
        # a rolled-back seed did not keep.
        transaction.on_commit(lambda: _password_write(password))

    def _licence_seed(self) -> None:
        now = timezone.now()
        licence_install(
            document=licence_document_issue(
                signing_key=settings.LICENCE_SIGNING_KEY,
                customer=ORGANISATION,
                plan="Education",
                device_limit=10000,
                valid_from=now - timedelta(minutes=1),
                valid_until=now + timedelta(days=365),
            ),
            actor=None,
        )

    def _abm_seed(self) -> None:
        admin = get_user_model().objects.filter(username="admin").first()
        abm = ABMControl(settings.DEP_API_URL)
        abm.call("reset")
        org_id = abm.json(
            "organisations", {"name": ORGANISATION, "apple_ids": APPLE_IDS, "org_type": "edu"}
        )["org_id"]
        springfield = abm.json("servers", {"org_id": org_id, "server_name": "Springfield MDM"})
        shelbyville = abm.json(
            "servers", {"org_id": org_id, "server_name": "Shelbyville Campus MDM"}
        )
        abm.call(f"servers/{springfield['server_uuid']}/devices", {"count": 3000})
        abm.call(f"servers/{shelbyville['server_uuid']}/devices", {"count": 800})

        account = account_create(actor=admin, display_name="Springfield district")
        abm.call("sign-in", {"apple_id": APPLE_IDS[0], "org_id": org_id})
        abm.call(
            f"servers/{springfield['server_uuid']}/public-key",
            raw=account.key_pair.certificate_pem.encode(),
        )
        token_file, headers = abm.call(
            f"servers/{springfield['server_uuid']}/token", {"validity_days": 10}
        )
        check = token_check(account=account, token_file=token_file)
        file_name = headers.get_filename() or "smime.p7m"
        token_take(
            account=account, check=check, actor=admin, file_name=file_name, intent=Intent.ADD
        )
        token_states_refresh()
        banner_refresh()
        self.stdout.write(
            f"Demo seeded: ABM organisation “{ORGANISATION}” in applesim with 2 MDM servers "
            "and 3,800 devices; DEP account “Springfield district” whose token expires "
            "in 10 days."
        )

    def _push_seed(self) -> None:
        """A push certificate expiring in 40 days, made with Create at applesim's portal."""
        admin = get_user_model().objects.filter(username="admin").first()
        sim = ABMControl(settings.DEP_API_URL)
        vendor, _headers = sim.call("pushcert/vendor", {"vendor_name": "mdmportal Demo"})
        # Configuration, like development-secrets.json: a seed that fails keeps it, harmlessly.
        path = _demo_vendor_path()
        assert path is not None, "seeded only when the demo keeps its own vendor certificate"
        path.touch(mode=0o600)
        path.write_bytes(vendor)
        signed_request = push_request_make(actor=admin, organisation=ORGANISATION)
        apple_id = APPLE_IDS[0]
        certificate, headers = sim.call(
            "pushcert/certificates",
            {"apple_id": apple_id, "request": signed_request.decode(), "validity_days": 40},
        )
        sim.call("pushcert/sign-in", {"apple_id": apple_id})
        push_certificate_intake(
            upload=TokenFile(headers.get_filename() or "MDM_Certificate.pem", certificate),
            actor=admin,
            apple_id=apple_id,
        )
        self.stdout.write(f"Demo seeded: an APNs push certificate of {apple_id}, 40 days left.")


def credentials_line() -> str:
    """How to sign in to the demo, or nothing when the demo did not make the users."""
    path = _password_path()
    if not path.exists():
        return ""
    password = path.read_text().strip()
    return f"Sign in as admin / {password}  (read-only: viewer / {password})"


def _password_path() -> Path:
    return settings.VAR_DIR / "demo-admin-password"


def _password_write(password: str) -> None:
    path = _password_path()
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(password)


def _portal_had_an_account() -> bool:
    """Whether a DEP account exists or ever existed (an admin's deletion is not undone)."""
    return (
        DEPAccount.objects.exists()
        or AuditEvent.objects.filter(
            action__in=[AuditEvent.Action.ACCOUNT_CREATED, AuditEvent.Action.TOKEN_UPLOADED]
        ).exists()
    )


def _demo_vendor_path() -> Path | None:
    """The demo's vendor certificate in var/; None when an operator configured their own."""
    path = settings.VAR_DIR / "apns-vendor-certificate.pem"
    return path if str(path) == settings.APNS_VENDOR_CERTIFICATE else None


def _portal_had_a_push_certificate() -> bool:
    return (
        PushCertificate.objects.exists()
        or AuditEvent.objects.filter(action=AuditEvent.Action.PUSH_UPLOADED).exists()
    )
