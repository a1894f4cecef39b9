"""The admin's journeys of issue 3, in headless Chromium against the live portal and applesim:
sign in and see the banner, add a DEP account through applesim's ABM page, renew a token from
the DEP Accounts list, and have a wrong or expired token refused with nothing changed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.dateformat import format as date_format
from playwright.sync_api import Locator, Page, expect

from dep_accounts.models import AuditEvent, DEPAccount, ServerToken
from dep_accounts.services.accounts import account_create
from dep_accounts.services.intake import token_check, token_take
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.verdict import Intent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DISPLAY_NAME = "Springfield district"


@pytest.fixture
def expiring_account(abm, admin, licence) -> DEPAccount:
    """As the demo seeds it: a DEP account whose token, downloaded in applesim, lasts 10 days.

    The licence is valid, so the account is the banner's only problem.
    """
    account = account_create(actor=admin, display_name=DISPLAY_NAME)
    token_file = abm.token_for(account, validity_days=10)
    check = token_check(account=account, token_file=token_file)
    return token_take(
        account=account, check=check, actor=admin, file_name="smime.p7m", intent=Intent.ADD
    ).account


def _day(moment: datetime) -> str:
    """A date as the console writes it (27 Jun 2026)."""
    return date_format(timezone.localtime(moment), "j M Y")


def _p7m(token_file: bytes, server_name: str = "Springfield_MDM") -> dict:
    """A .p7m as the browser's file chooser hands it over, named as ABM names it."""
    return {
        "name": f"{server_name}_Token_{timezone.now():%Y-%m-%dT%H-%M-%SZ}_smime.p7m",
        "mimeType": "application/pkcs7-mime",
        "buffer": token_file,
    }


def _banner(page: Page) -> Locator:
    return page.get_by_role("region", name="Problems to fix")


def _nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def _not_accepted(page: Page) -> Locator:
    return page.get_by_role("alert").filter(
        has_text="The server token was not accepted, so nothing was saved."
    )


def _name_cell(page: Page, server_name: str) -> Locator:
    return page.get_by_role("cell").filter(
        has=page.get_by_role("link", name=server_name, exact=True)
    )


def _current_token(account: DEPAccount) -> dict:
    """What a refused upload must leave as it was."""
    return {
        "account": DEPAccount.objects.filter(pk=account.pk)
        .values("display_name", "server_uuid", "token_expires_at", "state", "admin_apple_id")
        .get(),
        "token": ServerToken.objects.filter(account=account, is_current=True)
        .values("pk", "consumer_key_fingerprint", "access_token_expiry", "secrets_encrypted")
        .get(),
    }


def test_admin_signs_in_and_sees_the_banner_of_a_token_expiring_in_10_days(
    page, live_server, admin_sign_in, expiring_account, screenshot
):
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("heading", name="Sign in to mdmportal")).to_be_visible()
    screenshot(page, "login")

    admin_sign_in(page)

    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    banner = _banner(page)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(
        f"The server token of “{DISPLAY_NAME}” expires in "
        f"{expiring_account.days_left()} days ({expiring_account.token_expires_at:%-d %b %Y})."
    )
    renew = banner.get_by_role("link", name="Renew the token")
    expect(renew).to_have_attribute(
        "href", f"/admin/apple-dep/dep-accounts/{expiring_account.pk}/edit/#upload-token"
    )
    screenshot(page, "dashboard-banner")


def test_admin_adds_a_dep_account_with_a_token_from_abm(
    page, live_server, admin_sign_in, abm, licence, settings, tmp_path, screenshot
):
    settings.APPLESIM_ABM_URL = f"{abm.sim.url}/abm/"
    admin_sign_in(page)
    _nav(page, "DEP Accounts")
    page.get_by_role("link", name="Add DEP Account").first.click()
    page.get_by_role("button", name="Create key pair").click()
    expect(page.get_by_role("heading", name="Download the public key")).to_be_visible()

    with page.expect_download() as public_key_download:
        page.get_by_role("link", name="Download public key").click()
    public_key = tmp_path / public_key_download.value.suggested_filename
    public_key_download.value.save_as(public_key)
    assert re.fullmatch(r"mdmportal_\d+_public_key\.pem", public_key.name)

    with page.context.expect_page() as abm_opened:
        page.get_by_role("link", name=settings.APPLESIM_ABM_URL).click()
    abm_page = abm_opened.value
    abm_page.get_by_role("link", name="Springfield MDM").click()
    abm_page.get_by_label("Public key (.pem, .der)").set_input_files(public_key)
    abm_page.get_by_role("button", name="Upload").click()
    expect(abm_page.get_by_role("status")).to_have_text("Public key uploaded.")
    abm_page.get_by_role("button", name="Download Token").click()
    expect(abm_page.get_by_role("alert")).to_have_text(
        "Downloading a new server token will reset your existing one."
    )
    with abm_page.expect_download() as token_download:
        abm_page.get_by_role("button", name="Confirm").click()
    token_path = tmp_path / token_download.value.suggested_filename
    token_download.value.save_as(token_path)
    assert re.fullmatch(r"Springfield_MDM_Token_\S+_smime\.p7m", token_path.name)
    abm_page.close()

    page.get_by_label("Server token (.p7m)").set_input_files(token_path)
    expect(page.get_by_text(token_path.name)).to_be_visible()
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="This server token is for")).to_be_visible()
    preview = page.locator(".preview-card")
    expected_expiry = abm.sim.control.now() + timedelta(days=365)
    for shown in (
        "Springfield MDM",
        "Springfield Schools",
        "it.admin@springfield.example",
        _day(expected_expiry),
    ):
        expect(preview).to_contain_text(shown)
    screenshot(page, "add-preview")
    page.get_by_role("button", name="Add DEP account").click()

    expect(page.get_by_role("status")).to_contain_text(
        "Added “Springfield MDM” of Springfield Schools"
    )
    _nav(page, "DEP Accounts")
    row = page.get_by_role("row").filter(has=_name_cell(page, "Springfield MDM"))
    expect(row).to_contain_text("Springfield Schools")
    expect(row).to_contain_text(_day(expected_expiry))
    account = DEPAccount.objects.get(server_uuid=abm.server_uuid)
    assert account.server_tokens.get(is_current=True).file_name == token_path.name


def test_admin_renews_from_the_edit_button_revealed_at_the_end_of_the_server_name(
    page, live_server, admin_sign_in, abm, expiring_account, screenshot
):
    old_expiry = _day(expiring_account.token_expires_at)
    admin_sign_in(page)
    expect(_banner(page)).to_contain_text(DISPLAY_NAME)
    _nav(page, "DEP Accounts")

    cell = _name_cell(page, "Springfield MDM")
    edit = cell.get_by_role("link", name=f"Edit {DISPLAY_NAME}")
    expect(edit).to_have_css("opacity", "0")
    box = cell.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    expect(edit).to_have_css("opacity", "1")
    screenshot(page, "dep-accounts-edit-on-hover")
    edit.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Edit DEP Account")
    upload_token = page.get_by_role("region", name="Upload Token")
    expect(upload_token).to_contain_text(f"The current server token expires on {old_expiry}")
    renewed_file = abm.token_for(expiring_account)
    upload_token.locator('input[name="token_file"]').set_input_files(_p7m(renewed_file))
    page.get_by_role("button", name="Save").click()

    current = ServerToken.objects.get(account=expiring_account, is_current=True)
    assert timedelta(days=364) < current.access_token_expiry - timezone.now() <= timedelta(days=365)
    new_expiry = _day(current.access_token_expiry)
    expect(page.get_by_role("status")).to_contain_text(
        "Server token renewed: valid until "
        + date_format(timezone.localtime(current.access_token_expiry), "j M Y")
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text(DISPLAY_NAME)
    expect(page.locator("dl").filter(has_text="Token expiry")).to_contain_text(new_expiry)
    expect(_banner(page)).to_have_count(0)
    screenshot(page, "account-detail")

    _nav(page, "DEP Accounts")
    row = page.get_by_role("row").filter(has=_name_cell(page, "Springfield MDM"))
    expect(row).to_contain_text(new_expiry)
    expect(row).not_to_contain_text(old_expiry)
    assert expiring_account.server_tokens.filter(is_current=False).count() == 1


def test_renewal_refuses_a_token_of_another_server_and_an_expired_one_and_changes_nothing(
    page, live_server, admin_sign_in, abm, expiring_account, screenshot
):
    old_expiry = _day(expiring_account.token_expires_at)
    before = _current_token(expiring_account)
    shelbyville = abm.server_add("Shelbyville Campus MDM")
    other_server_file = abm.token_for(expiring_account, server_uuid=shelbyville)
    admin_sign_in(page)
    _banner(page).get_by_role("link", name="Renew the token").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit DEP Account")

    upload_token = page.get_by_role("region", name="Upload Token")
    upload_token.locator('input[name="token_file"]').set_input_files(
        _p7m(other_server_file, "Shelbyville_Campus_MDM")
    )
    page.get_by_role("button", name="Save").click()

    expect(_not_accepted(page)).to_be_visible()
    expect(upload_token).to_contain_text(
        "This token is for the MDM server “Shelbyville Campus MDM” of Springfield Schools, "
        "not for “Springfield MDM” of Springfield Schools."
    )
    found = page.locator(".compare-found")
    expect(found).to_contain_text("Shelbyville Campus MDM")
    expect(found).to_contain_text(shelbyville)
    expect(page.locator(".compare-this")).to_contain_text(abm.server_uuid)
    expect(page.get_by_role("link", name="Add it as a new DEP account instead")).to_be_visible()
    expect(upload_token).to_contain_text(f"The current server token expires on {old_expiry}")
    screenshot(page, "edit-error-wrong-server", full_page=True)
    assert _current_token(expiring_account) == before

    # An old download: ABM issued it two days ago, valid for one day.
    control = abm.sim.control
    expired_file = control.token_download(
        abm.server_uuid, validity_days=1, issued_at=control.now() - timedelta(days=2)
    )
    page.get_by_label("Display name").fill("Renamed while renewing")
    upload_token.locator('input[name="token_file"]').set_input_files(_p7m(expired_file))
    page.get_by_role("button", name="Save").click()

    expect(_not_accepted(page)).to_be_visible()
    expect(upload_token).to_contain_text(
        re.compile(r"This server token expired on \d{1,2} [A-Z][a-z]{2} \d{4}")
    )
    expect(upload_token).to_contain_text("download a new token for this MDM server")
    expect(upload_token).to_contain_text(f"The current server token expires on {old_expiry}")
    screenshot(page, "edit-error-expired", full_page=True)
    assert _current_token(expiring_account) == before

    _nav(page, "DEP Accounts")
    row = page.get_by_role("row").filter(has=_name_cell(page, "Springfield MDM"))
    expect(row).to_contain_text(old_expiry)
    expect(row).not_to_contain_text("Renamed while renewing")
    expect(_banner(page)).to_contain_text(DISPLAY_NAME)

    _nav(page, "Audit Log")
    rejections = page.get_by_role("row").filter(has_text="Token upload rejected")
    expect(rejections).to_have_count(2)
    expect(rejections.first).to_contain_text("This server token expired on")
    expect(rejections.last).to_contain_text("Shelbyville Campus MDM")
    for rejection in rejections.all():
        expect(rejection).to_contain_text("Failed")
        expect(rejection).to_contain_text("alex.admin")
    screenshot(page, "audit-log")
    rejected = AuditEvent.objects.filter(
        account=expiring_account, action=AuditEvent.Action.TOKEN_REJECTED
    )
    assert rejected.count() == 2


def test_keyboard_focus_reaches_the_edit_button_and_shows_it(
    page, live_server, admin_sign_in, expiring_account
):
    admin_sign_in(page)
    _nav(page, "DEP Accounts")
    edit = page.get_by_role("link", name=f"Edit {DISPLAY_NAME}")
    expect(edit).to_have_css("opacity", "0")

    for _ in range(40):
        page.keyboard.press("Tab")
        if edit.evaluate("button => button === document.activeElement"):
            break
    expect(edit).to_be_focused()
    expect(edit).to_have_css("opacity", "1")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit DEP Account")


def test_admin_finds_devices_subscription_and_audit_log_in_the_navigation(
    page, live_server, admin_sign_in, abm, licence, dep_account, screenshot
):
    serials = abm.sim.control.devices_add(abm.server_uuid, 30)
    devices_sync(account=dep_account)
    admin_sign_in(page)

    _nav(page, "DEP Devices")
    expect(page.get_by_role("cell", name=sorted(serials)[0])).to_be_visible()
    screenshot(page, "devices")

    _nav(page, "Subscription")
    expect(page.get_by_role("main")).to_contain_text("Springfield Schools")
    screenshot(page, "subscription")

    _nav(page, "Audit Log")
    expect(page.get_by_role("main")).to_contain_text(
        "Added DEP account for MDM server “Springfield MDM”"
    )


def test_upload_token_and_save_are_in_view_on_arrival_and_a_refusal_is_brought_into_view(
    page, live_server, admin_sign_in, abm, expiring_account, screenshot
):
    """Issue 12: renewing is why admins open Edit DEP Account, on a 1366x768 laptop too."""
    page.set_viewport_size({"width": 1366, "height": 768})
    shelbyville = abm.server_add("Shelbyville Campus MDM")
    other_server_file = abm.token_for(expiring_account, server_uuid=shelbyville)
    admin_sign_in(page)
    _nav(page, "DEP Accounts")
    cell = _name_cell(page, "Springfield MDM")
    cell.hover()
    cell.get_by_role("link", name=f"Edit {DISPLAY_NAME}").click()

    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Edit DEP Account")
    upload_token = page.get_by_role("region", name="Upload Token")
    token_field = upload_token.get_by_label("Upload Token")
    save = page.get_by_role("button", name="Save")
    choose_file = upload_token.get_by_text("Choose file")
    for arrival in (heading, token_field, choose_file, save):
        expect(arrival).to_be_in_viewport()
    screenshot(page, "edit-on-arrival-1366x768")

    token_field.set_input_files(_p7m(other_server_file, "Shelbyville_Campus_MDM"))
    save.click()

    refusal = upload_token.get_by_text("The server token was not accepted. Nothing was changed")
    expect(refusal).to_be_in_viewport()
    why = upload_token.get_by_text("This token is for the MDM server “Shelbyville Campus MDM”")
    expect(why).to_be_in_viewport()
    expect(page.locator(":focus")).to_contain_text("This token is for the MDM server")
    expect(token_field).to_have_accessible_description(re.compile("This token is for the MDM"))
    expect(save).to_be_in_viewport()
    screenshot(page, "edit-refusal-1366x768")


def test_on_a_touch_screen_the_edit_button_shows_without_hovering(
    browser, live_server, admin_sign_in, expiring_account
):
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    try:
        assert page.evaluate("matchMedia('(hover: none)').matches")
        admin_sign_in(page)
        _nav(page, "DEP Accounts")
        edit = _name_cell(page, "Springfield MDM").get_by_role("link", name=f"Edit {DISPLAY_NAME}")
        expect(edit).to_be_visible()
        # Read once, not retried: no hover or focus is there to reveal it.
        assert edit.evaluate("button => getComputedStyle(button).opacity") == "1"
        edit.tap()
        expect(page.get_by_role("heading", level=1)).to_have_text("Edit DEP Account")
    finally:
        context.close()


def test_a_token_from_a_new_apple_id_is_applied_by_ticking_the_box_without_choosing_it_again(
    page, live_server, admin_sign_in, abm, expiring_account, screenshot
):
    """Issue 12: the download in ABM already reset the old token, so the refused file must not
    be lost: ticking the box and saving applies the file the portal kept."""
    old_fingerprint = _current_token(expiring_account)["token"]["consumer_key_fingerprint"]
    deputy_file = abm.token_for(expiring_account, apple_id="deputy@springfield.example")
    admin_sign_in(page)
    _nav(page, "DEP Accounts")
    cell = _name_cell(page, "Springfield MDM")
    cell.hover()
    cell.get_by_role("link", name=f"Edit {DISPLAY_NAME}").click()

    upload_token = page.get_by_role("region", name="Upload Token")
    upload_token.locator('input[name="token_file"]').set_input_files(
        _p7m(deputy_file, "Springfield_MDM_deputy")
    )
    page.get_by_role("button", name="Save").click()

    expect(_not_accepted(page)).to_be_visible()
    expect(upload_token).to_contain_text("deputy@springfield.example")
    expect(upload_token).to_contain_text("Springfield_MDM_deputy_Token_")
    assert _current_token(expiring_account)["token"]["consumer_key_fingerprint"] == old_fingerprint
    screenshot(page, "edit-apple-id-changed-staged", full_page=True)

    # No file chosen again: the box alone applies the file the portal kept.
    page.get_by_label("The Apple ID that manages this server in ABM has changed").check()
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text("Server token renewed: valid until")
    current = ServerToken.objects.get(account=expiring_account, is_current=True)
    assert current.consumer_key_fingerprint != old_fingerprint
    assert current.admin_apple_id == "deputy@springfield.example"
    assert current.apple_id_change_confirmed
    assert AuditEvent.objects.filter(
        account=expiring_account, action=AuditEvent.Action.APPLE_ID_CHANGED
    ).exists()
