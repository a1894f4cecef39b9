"""Content tokens as an admin meets them, in headless Chromium against the live portal and
applesim: renew one with a file downloaded from applesim's ABM page (Apps and Books), and take a
location over from another MDM."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.utils import timezone
from django.utils.dateformat import format as date_format
from playwright.sync_api import Locator, Page, expect

from dep_accounts.models import AuditEvent, ContentToken
from dep_accounts.services.content_tokens.intake import content_token_intake
from dep_accounts.services.intake import TokenFile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOCATION = "Springfield High"
OTHER_MDM = {"id": "522d5c43-44ca", "name": "Other MDM", "metadata": "other.example"}


@pytest.fixture
def expiring_content_token(apps_books, admin, licence) -> ContentToken:
    """As the demo seeds it: a content token, downloaded in applesim, that lasts 20 days."""
    return content_token_intake(
        content_token=None,
        upload=TokenFile(
            "sToken_for_Springfield_High.vpptoken", apps_books.token(validity_days=20)
        ),
        actor=admin,
        apple_id="vpp.manager@springfield.example",
    )


def _day(moment: datetime) -> str:
    return date_format(timezone.localtime(moment), "j M Y")


def _banner(page: Page) -> Locator:
    return page.get_by_role("region", name="Problems to fix")


def _nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def _abm_download(page: Page, settings, tmp_path):
    """Open ABM from the page's demo link and download the location's content token."""
    with page.context.expect_page() as abm_opened:
        page.get_by_role("link", name=settings.APPLESIM_ABM_URL).click()
    abm_page = abm_opened.value
    apps_and_books = abm_page.locator("section#apps-and-books")
    with abm_page.expect_download() as download:
        apps_and_books.get_by_role("button", name=f"Download content token for {LOCATION}").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    abm_page.close()
    assert path.name == "sToken_for_Springfield_High.vpptoken"
    return path


def test_admin_renews_a_content_token_with_a_file_from_abms_apps_and_books(
    page, live_server, admin_sign_in, apps_books, expiring_content_token, settings, tmp_path,
    screenshot,
):  # fmt: skip
    settings.APPLESIM_ABM_URL = f"{apps_books.sim.url}/abm/"
    old_expiry = _day(expiring_content_token.expires_at)
    admin_sign_in(page)
    expect(_banner(page)).to_contain_text(f"The content token of “{LOCATION}” expires in")
    _nav(page, "Content Tokens")
    row = page.get_by_role("row").filter(has_text=LOCATION)
    for shown in ("GB", old_expiry, "Expires soon"):
        expect(row).to_contain_text(shown)

    cell = page.get_by_role("cell").filter(has=page.get_by_role("link", name=LOCATION, exact=True))
    edit = cell.get_by_role("link", name=f"Edit {LOCATION}")
    expect(edit).to_have_css("opacity", "0")
    box = cell.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    expect(edit).to_have_css("opacity", "1")
    edit.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Edit Content Token")
    upload_token = page.get_by_role("region", name="Upload Token")
    expect(upload_token).to_contain_text(f"The current content token expires on {old_expiry}")
    token_path = _abm_download(page, settings, tmp_path)
    upload_token.locator('input[name="token_file"]').set_input_files(token_path)
    page.get_by_role("button", name="Save").click()

    expiring_content_token.refresh_from_db()
    new_expiry = _day(expiring_content_token.expires_at)
    expect(page.get_by_role("status")).to_contain_text(
        f"Content token of “{LOCATION}” renewed: valid until {new_expiry}"
    )
    expect(page.locator("dl").filter(has_text="Expiry")).to_contain_text(new_expiry)
    expect(_banner(page)).to_have_count(0)
    assert expiring_content_token.uploads.count() == 2

    _nav(page, "Apple Credentials")
    credential = page.get_by_role("row").filter(has_text=LOCATION)
    expect(credential).to_contain_text("Apps and Books content token")
    expect(credential).to_contain_text(new_expiry)
    screenshot(page, "apple-credentials")


def test_admin_takes_a_location_over_from_another_mdm(
    page, live_server, admin_sign_in, apps_books, licence, settings, tmp_path, screenshot
):
    settings.APPLESIM_ABM_URL = f"{apps_books.sim.url}/abm/"
    apps_books.sim.control.vpp_mdm_info_set(apps_books.uid, OTHER_MDM)
    admin_sign_in(page)
    _nav(page, "Content Tokens")
    page.get_by_role("link", name="Add Content Token").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add Content Token")
    token_path = _abm_download(page, settings, tmp_path)
    page.locator('input[name="token_file"]').set_input_files(token_path)
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("alert").first).to_contain_text(
        "The content token was not accepted, so nothing was saved."
    )
    upload_token = page.get_by_role("region", name="Upload Token")
    expect(upload_token).to_contain_text("managed by another MDM (“Other MDM”)")
    expect(upload_token).to_contain_text(f"“{token_path.name}” is kept")
    assert not ContentToken.objects.exists()
    screenshot(page, "content-token-another-mdm")

    page.get_by_label("Take over from the other MDM").check()
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text(f"Content token of “{LOCATION}” added")
    details = page.locator("dl").filter(has_text="Managed by")
    expect(details).to_contain_text("mdmportal")
    expect(page.get_by_role("table").filter(has_text="Fingerprint")).to_contain_text(
        "taken over from Other MDM"
    )
    assert apps_books.sim.control.vpp_location(apps_books.uid)["mdm_info"]["name"] == "mdmportal"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONTENT_TOKEN_TAKEN_OVER).exists()
