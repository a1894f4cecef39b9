"""Fixtures shared by the tests: users in each role, DEP accounts whose tokens were issued by
applesim's ABM and uploaded through the real services. `sim`, applesim over a real socket, comes
from applesim's own pytest plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from applesim.testing import RunningSim
    from tests.api_contract import API


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_vendor_certificate(settings) -> None:
    """No MDM vendor certificate unless a test sets one (`push_portal`): not the demo's in var/."""
    settings.APNS_VENDOR_CERTIFICATE = ""


@dataclass
class ABM:
    """One organisation in applesim, with an MDM server ready to take public keys."""

    sim: RunningSim
    org_id: str
    server_uuid: str
    apple_id: str

    def server_add(self, name: str) -> str:
        return self.sim.control.server_create(org_id=self.org_id, server_name=name)

    def token_for(
        self,
        account,
        *,
        server_uuid: str | None = None,
        validity_days: int = 365,
        apple_id: str | None = None,
    ) -> bytes:
        """Upload the account's public key to an MDM server and download its server token."""
        server_uuid = server_uuid or self.server_uuid
        control = self.sim.control
        control.sign_in(org_id=self.org_id, apple_id=apple_id or self.apple_id)
        control.public_key_upload(
            server_uuid=server_uuid, certificate=account.key_pair.certificate_pem.encode()
        )
        return control.token_download(server_uuid=server_uuid, validity_days=validity_days)


@pytest.fixture
def abm(sim: RunningSim, settings) -> ABM:
    settings.DEP_API_URL = sim.url
    sim.control.reset()
    org_id = sim.control.organisation_create(
        name="Springfield Schools",
        apple_ids=["it.admin@springfield.example", "deputy@springfield.example"],
    )
    server_uuid = sim.control.server_create(org_id=org_id, server_name="Springfield MDM")
    return ABM(
        sim=sim, org_id=org_id, server_uuid=server_uuid, apple_id="it.admin@springfield.example"
    )


def _user_in(django_user_model, username: str, group: str | None):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username=username, password="correct horse 42")
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def admin(django_user_model):
    return _user_in(django_user_model, "alex.admin", "admins")


@pytest.fixture
def viewer(django_user_model):
    return _user_in(django_user_model, "val.viewer", "viewers")


@pytest.fixture
def nobody(django_user_model):
    return _user_in(django_user_model, "noel.norole", None)


@pytest.fixture
def client_as(client) -> Callable:
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


@pytest.fixture
def dep_account(abm: ABM, admin):
    """A DEP account with a current token, valid one year, for applesim's Springfield MDM."""
    from dep_accounts.services.accounts import account_create
    from dep_accounts.services.intake import token_check, token_take
    from dep_accounts.services.verdict import Intent

    account = account_create(actor=admin)
    token_file = abm.token_for(account)
    check = token_check(account=account, token_file=token_file)
    return token_take(
        account=account, check=check, actor=admin, file_name="smime.p7m", intent=Intent.ADD
    ).account


@pytest.fixture
def licence(db):
    """A subscription licence valid for a year, signed with the development key."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from dep_accounts.services.licence import licence_document_issue, licence_install

    now = timezone.now()
    document = licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer="Springfield Schools",
        plan="Education",
        device_limit=100_000,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
    return licence_install(document=document, actor=None)


@pytest.fixture
def emails_flush(db) -> Callable[[], int]:
    """Send every queued email now, as the outbox's task does after commit."""
    from dep_accounts.models import OutboundEmail
    from dep_accounts.services.outbox import email_deliver

    def flush() -> int:
        queued = OutboundEmail.objects.filter(status=OutboundEmail.Status.QUEUED)
        ids = list(queued.values_list("pk", flat=True))
        for email_id in ids:
            email_deliver(email_id=email_id)
        return len(ids)

    return flush


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    """The Demo IdP for the Django test client (the portal is http://testserver)."""
    from tests.idpsim import idpsim_start

    running = idpsim_start(portal="http://testserver", log_dir=tmp_path_factory.mktemp("idpsim"))
    yield running
    running.stop()


@pytest.fixture
def sso(idp, settings):
    """The portal configured with the Demo IdP as its one identity provider."""
    idp.configure(settings)
    return idp


@pytest.fixture
def api() -> Iterator[API]:
    """A script's client of the API; each response is checked against the OpenAPI document."""
    from django.test import Client

    from tests.api_contract import API, response_check

    client = API(Client())
    yield client
    for method, path, response in client.seen:
        response_check(method, path, response)


@pytest.fixture
def keys(admin, viewer, nobody) -> dict[str, str]:
    """API keys of each role, a revoked one and one that never existed."""
    from dep_accounts.services.api_tokens import api_token_create, api_token_revoke

    revoked = api_token_create(user=admin, name="old script")
    api_token_revoke(api_token=revoked.api_token, actor=admin)
    return {
        "admin": api_token_create(user=admin, name="renewal script").key,
        "viewer": api_token_create(user=viewer, name="dashboard").key,
        "no role": api_token_create(user=nobody, name="stray").key,
        "revoked": revoked.key,
        "bad": "mdmp_" + "x" * 40,
    }


@dataclass
class AppsBooks:
    """An Apps and Books location in applesim's ABM, and the portal pointed at the service."""

    sim: RunningSim
    org_id: str
    uid: str

    def token(self, *, uid: str | None = None, validity_days: int = 365, **kwargs) -> bytes:
        """Click Download next to the location: a .vpptoken."""
        return self.sim.control.vpp_token_download(
            uid or self.uid, validity_days=validity_days, **kwargs
        )

    def location_add(self, name: str, *, country: str = "US") -> str:
        return self.sim.control.vpp_location_create(self.org_id, name, country=country)


@pytest.fixture
def apps_books(sim: RunningSim, settings) -> AppsBooks:
    settings.VPP_API_URL = sim.url + "/mdm/v2"
    settings.VPP_MDM_ID = "mdmportal-test-instance"
    sim.control.reset()
    org_id = sim.control.organisation_create("Springfield Schools", org_type="edu")
    uid = sim.control.vpp_location_create(org_id, "Springfield High", country="GB")
    return AppsBooks(sim=sim, org_id=org_id, uid=uid)


@pytest.fixture
def content_token(apps_books: AppsBooks, admin):
    """A content token for Springfield High, valid 300 days, uploaded through the intake."""
    from dep_accounts.services.content_tokens.intake import content_token_intake
    from dep_accounts.services.intake import TokenFile

    return content_token_intake(
        content_token=None,
        upload=TokenFile(
            "sToken_for_Springfield_High.vpptoken", apps_books.token(validity_days=300)
        ),
        actor=admin,
        apple_id="vpp.manager@springfield.example",
    )


@dataclass
class PushPortal:
    """applesim's Apple Push Certificates Portal, with the portal's vendor certificate set."""

    sim: RunningSim
    apple_id: str

    def create(self, signed_request: bytes, *, apple_id: str | None = None) -> bytes:
        """Create a Certificate (a new topic) for the signed request; the issued .pem."""
        return self.sim.control.push_certificate_create(apple_id or self.apple_id, signed_request)

    def renew(self, signed_request: bytes, *, topic: str, apple_id: str | None = None) -> bytes:
        return self.sim.control.push_certificate_renew(
            apple_id or self.apple_id, topic, signed_request
        )

    def first_certificate(self, admin):
        """Request, Create at Apple and upload: the portal's first push certificate."""
        from dep_accounts.services.intake import TokenFile
        from dep_accounts.services.push.intake import push_certificate_intake, push_request_make

        pem = self.create(push_request_make(actor=admin))
        return push_certificate_intake(
            upload=TokenFile("MDM_Certificate.pem", pem), actor=admin, apple_id=self.apple_id
        )


@pytest.fixture
def push_portal(abm: ABM, settings, tmp_path) -> PushPortal:
    """After `abm`'s reset: a reset makes Apple's CAs anew, and the vendor certificate with it."""
    sim = abm.sim
    vendor = tmp_path / "apns-vendor.pem"
    vendor.write_bytes(sim.control.push_vendor_issue("Springfield MDM Vendor"))
    settings.APNS_VENDOR_CERTIFICATE = str(vendor)
    settings.APNS_VENDOR_CERTIFICATE_PASSWORD = ""
    return PushPortal(sim=sim, apple_id="push.admin@springfield.example")
