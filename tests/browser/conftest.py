"""Chromium for the browser journeys: one headless browser per session, a fresh context per test.

Debian's Chromium is used because the Playwright browser download cannot run here; CI installs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1440, "height": 900}
# The README's pictures are refreshed on purpose (SCREENSHOTS_DIR=docs/screenshots make test);
# an ordinary run keeps its screenshots under var/ and leaves the work tree clean.
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR") or Path(__file__).resolve().parents[2] / "var" / "screenshots"
)
ADMIN_PASSWORD = "correct horse 42"


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests, closed before the rest of the suite runs."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}: run `apt-get install chromium`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API keeps an asyncio loop running in this thread, so Django would
        # take the tests' own ORM calls for calls from async code; they are plain sync calls.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A new browser context and page at the size of a laptop screen."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot() -> Callable[..., None]:
    """Save the page as <SCREENSHOTS>/<name>.png (the README shows docs/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str, *, full_page: bool = False) -> None:
        page.screenshot(
            path=SCREENSHOTS / f"{name}.png", full_page=full_page, animations="disabled"
        )

    return save


@pytest.fixture
def admin_sign_in(admin, live_server) -> Callable[[Page], None]:
    """Sign in as the admin through the real login form, with a password set here."""
    admin.set_password(ADMIN_PASSWORD)
    admin.save(update_fields=["password"])

    def sign_in(page: Page) -> None:
        page.goto(live_server.url + "/")
        page.get_by_label("Username").fill(admin.get_username())
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    return sign_in
