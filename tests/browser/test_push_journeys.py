"""The push certificate's yearly renewal in headless Chromium, against the live portal and
applesim's Apple Push Certificates Portal: Renew is accepted with the topic kept; Create is
refused by the topic guard, which says why and with which Apple ID to renew."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dep_accounts.models import PushCertificate, PushCertificateUpload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def installed(push_portal, admin, licence, settings) -> PushCertificateUpload:
    """The portal's push certificate, made with Create at applesim; a valid licence, so the
    banner stays out of the pictures."""
    settings.APPLESIM_ABM_URL = f"{push_portal.sim.url}/abm/"
    return push_portal.first_certificate(admin)


def _signed_request(page: Page, tmp_path: Path) -> Path:
    """On Admin > APNs Certificate: download the signed request."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="APNs Certificate").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("APNs Certificate")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the signed request").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    return path


def _at_apple(page: Page, push_portal, signed_request: Path, tmp_path: Path, *, renew: str | None):
    """At the Apple Push Certificates Portal: Renew `renew`, or Create; the downloaded .pem."""
    apple = page.context.new_page()
    apple.goto(f"{push_portal.sim.url}/pushcert/")
    apple.get_by_label("Apple ID").fill(push_portal.apple_id)
    apple.get_by_role("button", name="Sign In").click()
    if renew:
        apple.locator(f'tr[data-topic="{renew}"]').get_by_role("link", name="Renew").click()
    else:
        apple.get_by_role("link", name="Create a Certificate").click()
    apple.get_by_label("Vendor-signed certificate signing request").set_input_files(signed_request)
    apple.get_by_role("button", name="Upload").click()
    expect(apple.get_by_role("status")).to_have_text("Renewed." if renew else "Created.")
    with apple.expect_download() as download:
        apple.get_by_role("link", name="Download").click()
    pem = tmp_path / download.value.suggested_filename
    download.value.save_as(pem)
    apple.close()
    return pem


def _upload_on_edit(page: Page, pem: Path) -> None:
    """The hover-edit button at the end of the topic, then Upload Certificate and Save."""
    page.bring_to_front()
    cell = page.locator("td.name-cell")
    edit = cell.get_by_role("link", name="Edit the APNs certificate")
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    assert box is not None
    cell.hover(position={"x": box["width"] - 4, "y": box["height"] / 2})
    expect(edit).to_have_css("opacity", "1")
    edit.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit APNs Certificate")
    region = page.get_by_role("region", name="Upload Certificate")
    region.locator('input[name="certificate_file"]').set_input_files(pem)
    page.get_by_role("button", name="Save").click()


def test_admin_renews_the_push_certificate_with_renew_and_the_topic_is_kept(
    page, live_server, admin_sign_in, push_portal, installed, tmp_path
):
    admin_sign_in(page)
    signed_request = _signed_request(page, tmp_path)
    pem = _at_apple(page, push_portal, signed_request, tmp_path, renew=installed.topic)
    _upload_on_edit(page, pem)

    expect(page.get_by_role("status")).to_contain_text(f"topic {installed.topic}")
    push = PushCertificate.objects.get()
    assert push.topic == installed.topic and push.serial_number != installed.serial_number
    assert PushCertificateUpload.objects.filter(is_current=True).get().file_name == pem.name


def test_a_certificate_made_with_create_is_refused_with_the_explanation(
    page, live_server, admin_sign_in, push_portal, installed, tmp_path, screenshot
):
    admin_sign_in(page)
    signed_request = _signed_request(page, tmp_path)
    pem = _at_apple(page, push_portal, signed_request, tmp_path, renew=None)
    _upload_on_edit(page, pem)

    expect(
        page.get_by_role("alert").filter(
            has_text="The push certificate was not accepted, so nothing was saved."
        )
    ).to_be_visible()
    region = page.get_by_role("region", name="Upload Certificate")
    expect(region).to_contain_text("instead of “Renew”")
    expect(region).to_contain_text("every enrolled device would stop answering")
    compare = page.get_by_label("Which topic the certificate has")
    expect(compare).to_contain_text(installed.topic)
    expect(compare).to_contain_text(push_portal.apple_id)
    screenshot(page, "push-topic-guard-refusal", full_page=True)
    push = PushCertificate.objects.get()
    assert (push.topic, push.serial_number) == (installed.topic, installed.serial_number)
