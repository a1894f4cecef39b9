"""Issue 16's journeys in headless Chromium: single sign-on through the Demo IdP (idpsim, Node's
oidc-provider) as an admin, a viewer and someone with no role; TOTP enrolment, sign-in with a
code computed here, and a recovery code that works once."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import Page, expect

from dep_accounts.models import AuditEvent
from tests.browser.conftest import ADMIN_PASSWORD
from tests.idpsim import ADMIN, NO_ROLE, VIEWER

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def live_idp(live_server, tmp_path_factory):
    """The Demo IdP, with the live portal's callback as its client's redirect URI."""
    from tests.idpsim import idpsim_start

    running = idpsim_start(portal=live_server.url, log_dir=tmp_path_factory.mktemp("idpsim"))
    yield running
    running.stop()


@pytest.fixture
def demo_idp(live_idp, settings):
    live_idp.configure(settings)
    return live_idp


def _sso_sign_in(page: Page, portal: str, user: tuple[str, str]) -> None:
    page.goto(portal + "/")
    page.get_by_role("button", name="Sign in with Demo IdP").click()
    expect(page.get_by_role("heading", name="Demo IdP")).to_be_visible()
    page.get_by_label("Username").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Sign in to Demo IdP").click()


def _user_menu(page: Page):
    return page.locator("summary[aria-label^='User menu']")


def test_sso_sign_in_takes_the_role_from_the_groups_claim(
    page, live_server, demo_idp, licence, screenshot
):
    page.goto(live_server.url + "/")
    expect(page.get_by_role("button", name="Sign in with Demo IdP")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()
    screenshot(page, "login-sso")

    _sso_sign_in(page, live_server.url, ADMIN)
    expect(page).to_have_url(live_server.url + "/")
    expect(_user_menu(page)).to_have_attribute("aria-label", re.compile("ada.admin, Admin"))
    _user_menu(page).click()
    page.get_by_role("button", name="Log out").click()
    # The IdP's own session ends too (RP-Initiated Logout): it asks, then sends us back.
    expect(page).to_have_url(re.compile(re.escape(demo_idp.issuer) + "/session/end"))
    page.get_by_role("button", name=re.compile("Yes")).click()
    expect(page.get_by_role("heading", name="Sign in to mdmportal")).to_be_visible()

    _sso_sign_in(page, live_server.url, VIEWER)
    expect(_user_menu(page)).to_have_attribute("aria-label", re.compile("victor.viewer, Viewer"))
    expect(page.get_by_role("link", name="Add DEP Account")).to_have_count(0)


def test_sso_user_without_a_role_is_refused_with_a_clear_page(
    page, live_server, demo_idp, django_user_model, screenshot
):
    _sso_sign_in(page, live_server.url, NO_ROLE)
    expect(page.get_by_role("heading", name="No access to mdmportal")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("none of your groups there gives a role")
    screenshot(page, "sso-refused")
    assert not django_user_model.objects.filter(username="nora.norole").exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_REFUSED).count() == 1


def _password_sign_in(page: Page, portal: str, username: str) -> None:
    page.goto(portal + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_totp_enrolment_then_a_code_and_a_recovery_code_that_works_once(
    page, live_server, admin, licence, settings, screenshot
):
    settings.MFA_REQUIRED_FOR_ADMINS = True
    admin.set_password(ADMIN_PASSWORD)
    admin.save(update_fields=["password"])
    _password_sign_in(page, live_server.url, admin.get_username())
    # Mandatory for admins: sent to confirm the password, then to enrol, before anything else.
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("must use two-factor authentication")
    expect(page.locator(".qr-code svg")).to_be_visible()
    screenshot(page, "two-factor-enrol")
    totp = pyotp.TOTP(page.get_by_label("Or type this key").input_value())
    page.get_by_label("Authenticator code").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    codes = page.locator(".recovery-codes li").all_inner_texts()
    assert len(codes) == 10

    page.context.clear_cookies()
    _password_sign_in(page, live_server.url, admin.get_username())
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    page.get_by_label("Code").fill(totp.now())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(live_server.url + "/")

    for attempt in ("first", "second"):
        page.context.clear_cookies()
        _password_sign_in(page, live_server.url, admin.get_username())
        page.get_by_label("Code").fill(codes[0])
        page.get_by_role("button", name="Verify").click()
        if attempt == "first":
            expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    expect(page.get_by_text("Incorrect code")).to_be_visible()
