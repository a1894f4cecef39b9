"""Request bodies larger than anything the portal accepts are refused before they are read."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.edit_page import edit_form, edit_url

pytestmark = pytest.mark.django_db


def test_a_body_declared_over_the_limit_is_refused_unread(client_as, admin, dep_account, settings):
    settings.MAX_REQUEST_BYTES = 1024
    client = client_as(admin)

    response = client.post(
        reverse("dep_accounts:edit", args=[dep_account.pk]),
        data=b"x" * 2048,
        content_type="application/octet-stream",
    )

    assert response.status_code == 413
    page = response.content.decode()
    assert "This upload is too large" in page and "2.0\xa0KB" in page
    assert "Download Token" in page


def test_a_body_within_the_limit_reaches_the_page(client_as, admin, dep_account, settings):
    settings.MAX_REQUEST_BYTES = 1024 * 1024

    response = client_as(admin).post(
        edit_url(dep_account), data=edit_form(dep_account, display_name="Springfield district")
    )

    # The page read the body and saved it: the settings were changed, then back to the account.
    assert response.status_code == 302
    assert response.url == dep_account.get_absolute_url()
    dep_account.refresh_from_db()
    assert dep_account.display_name == "Springfield district"


def test_anonymous_oversized_posts_are_refused_too(client, settings):
    settings.MAX_REQUEST_BYTES = 1024

    response = client.post(
        reverse("login"), data=b"y" * 4096, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 413
