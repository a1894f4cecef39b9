"""The other pages: dashboard and banner, DEP Devices, Enrollment Profiles, Subscription, Audit
Log, and the Django admin's read-only registrations."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import (
    AuditEvent,
    DEPAccount,
    DEPDevice,
    EnrollmentProfile,
    SubscriptionLicence,
)
from dep_accounts.services.apple_access import server_token_credentials
from dep_accounts.services.audit import audit_record
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.services.licence import licence_document_issue, licence_install
from tests import accessible

pytestmark = pytest.mark.django_db

State = DEPAccount.State


def _licence_document(*, days: int = 365, device_limit: int = 500, plan: str = "Business") -> str:
    now = timezone.now()
    return licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer="Springfield Schools",
        plan=plan,
        device_limit=device_limit,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=days),
    )


@pytest.fixture
def licence(admin) -> SubscriptionLicence:
    return licence_install(document=_licence_document(), actor=admin)


def _account(name: str, *, state: str = State.OK, days: int = 200, **fields) -> DEPAccount:
    return DEPAccount.objects.create(
        server_name=name,
        server_uuid=name.upper().replace(" ", "-"),
        org_name="Springfield Schools",
        state=state,
        # From mid-morning, so that days and an hour never cross a midnight.
        token_expires_at=timezone.now().replace(hour=9, minute=0) + timedelta(days=days, hours=1),
        **fields,
    )


def _devices(account: DEPAccount, serials: list[str], **fields) -> None:
    """Devices as a sync leaves them, the account's device count included."""
    DEPDevice.objects.bulk_create(
        DEPDevice(account=account, serial_number=serial, model="iPad Air", os="iOS", **fields)
        for serial in serials
    )
    if not fields.get("removed_at"):
        DEPAccount.objects.filter(pk=account.pk).update(
            device_count=F("device_count") + len(serials)
        )


# Dashboard and banner


def test_the_dashboard_summarises_the_accounts_and_lists_every_banner(client_as, viewer):
    _account("Springfield MDM", state=State.WARNING, days=10)
    _account("Shelbyville MDM", state=State.EXPIRED, days=-2)
    _account("Ogdenville MDM", state=State.OK, days=300, device_count=40)
    banner_refresh()
    tree = accessible.page(client_as(viewer).get(reverse("dep_accounts:dashboard")))
    banner = accessible.find(tree, "region", "Problems to fix")
    said = accessible.text(banner)
    assert said.index("Shelbyville MDM") < said.index("Springfield MDM")
    alerts = accessible.find_all(banner, "alert")
    assert len(alerts) == 2  # the expired token and the missing licence
    assert "Warning: " in said and "Springfield MDM" not in " ".join(map(accessible.text, alerts))
    expired = DEPAccount.objects.get(state="expired")
    links = [accessible.attribute(link, "href") for link in accessible.find_all(banner, "link")]
    assert reverse("dep_accounts:detail", args=[expired.pk]) in links
    assert reverse("dep_accounts:edit", args=[expired.pk]) not in links
    summary = accessible.text(accessible.find(tree, "region", "Summary"))
    assert "Next token to expire" in summary and "Springfield MDM" in summary
    assert "DEP accounts 3 " in summary
    assert "Devices in ABM 40 " in summary


def test_the_banner_sends_admins_to_fix_and_viewers_to_look(client_as, admin, viewer):
    account = _account("Shelbyville MDM", state=State.EXPIRED, days=-2)
    banner_refresh()

    for_admin = client_as(admin).get(reverse("dep_accounts:dashboard")).content.decode()
    for_viewer = client_as(viewer).get(reverse("dep_accounts:dashboard")).content.decode()

    assert "Renew now" in for_admin and "Upload a licence" in for_admin
    assert reverse("dep_accounts:edit", args=[account.pk]) in for_admin
    assert "Renew now" not in for_viewer
    assert reverse("dep_accounts:detail", args=[account.pk]) in for_viewer


def test_the_banner_shows_on_every_page_after_sign_in_only(client, client_as, viewer):
    _account("Springfield MDM", state=State.CRITICAL, days=3)
    banner_refresh()
    assert b"banner-item" not in client.get(reverse("login")).content
    viewer_client = client_as(viewer)
    for name in ("dep_accounts:list", "dep_accounts:devices", "dep_accounts:audit_log"):
        assert (
            "“Springfield MDM” expires in 3 days"
            in viewer_client.get(reverse(name)).content.decode()
        )


def test_the_dashboard_says_when_nothing_needs_attention(client_as, viewer, licence):
    _account("Springfield MDM")
    banner_refresh()
    tree = accessible.page(client_as(viewer).get(reverse("dep_accounts:dashboard")))
    assert "Nothing needs your attention" in accessible.text(accessible.find_all(tree, "status")[0])
    assert not accessible.find_all(tree, "region", "Problems to fix")


def test_the_sidebar_marks_the_current_page(client_as, viewer):
    response = client_as(viewer).get(reverse("dep_accounts:devices"))
    page = response.content.decode()
    current = accessible.find(accessible.page(response), "link", "DEP Devices")
    assert accessible.attribute(current, "href") == reverse("dep_accounts:devices")
    assert accessible.attribute(current, "aria-current") == "page"
    for label in (
        "DEP Accounts",
        "DEP Devices",
        "Enrollment Profiles",
        "Subscription",
        "Audit Log",
    ):
        assert label in page


# DEP Devices


def test_devices_are_searched_by_serial_number_prefix_in_any_case(client_as, viewer):
    account = _account("Springfield MDM")
    _devices(account, ["C02ABC0001", "C02XYZ0002", "F9Q1230003"])
    page = client_as(viewer).get(reverse("dep_accounts:devices"), {"q": " c02 "}).content.decode()
    assert "C02ABC0001" in page and "C02XYZ0002" in page
    assert "F9Q1230003" not in page


def test_devices_are_filtered_by_account_profile_status_and_removal(client_as, viewer):
    springfield, shelbyville = _account("Springfield MDM"), _account("Shelbyville MDM")
    _devices(springfield, ["SPRING0001"], profile_status="assigned")
    _devices(springfield, ["SPRING0002"], profile_status="empty")
    _devices(springfield, ["SPRING0003"], removed_at=timezone.now())
    _devices(shelbyville, ["SHELBY0001"], profile_status="assigned")
    client = client_as(viewer)
    url = reverse("dep_accounts:devices")

    by_account = client.get(url, {"account": springfield.pk}).content.decode()
    assert "SPRING0001" in by_account and "SPRING0002" in by_account
    assert "SHELBY0001" not in by_account and "SPRING0003" not in by_account

    assigned = client.get(url, {"profile_status": "assigned"}).content.decode()
    assert "SPRING0001" in assigned and "SHELBY0001" in assigned and "SPRING0002" not in assigned

    with_removed = client.get(url, {"account": springfield.pk, "removed": "1"}).content.decode()
    assert "SPRING0003" in with_removed and "Removed" in with_removed


def test_devices_and_audit_log_filter_by_part_of_an_account_name_without_listing_accounts(
    client_as, viewer
):
    springfield, shelbyville = _account("Springfield MDM"), _account("Shelbyville MDM")
    _devices(springfield, ["SPRING0001"])
    _devices(shelbyville, ["SHELBY0001"])
    client = client_as(viewer)

    page = client.get(reverse("dep_accounts:devices"), {"account_name": " shelby"})
    text = page.content.decode()
    assert "SHELBY0001" in text and "SPRING0001" not in text
    for url, role, label in (
        (reverse("dep_accounts:devices"), "search", "Search devices"),
        (reverse("dep_accounts:audit_log"), "form", "Filter the audit log"),
    ):
        form = accessible.find(accessible.page(client.get(url)), role, label)
        assert accessible.inputs(form, "account_name"), url
        said = accessible.text(form)
        assert "Springfield MDM" not in said and "Shelbyville MDM" not in said, url


def test_devices_are_paginated_by_100_in_the_same_queries_whatever_their_number(client_as, viewer):
    account = _account("Springfield MDM")
    client = client_as(viewer)
    _devices(account, [f"A{n:09d}" for n in range(5)])
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("dep_accounts:devices"))
    _devices(account, [f"B{n:09d}" for n in range(100)])
    with CaptureQueriesContext(connection) as many:
        first = client.get(reverse("dep_accounts:devices"))
    assert len(many) == len(few)
    assert len(accessible.rows(accessible.page(first), "DEP devices")) == 100
    second = client.get(reverse("dep_accounts:devices"), {"page": 2})
    assert len(accessible.rows(accessible.page(second), "DEP devices")) == 5
    assert "Page 2 of 2" in second.content.decode()


def _pager_link(page: str, rel: str) -> str:
    return html.unescape(re.search(rf'href="\?([^"]+)" rel="{rel}"', page).group(1))


def test_devices_pages_follow_next_and_previous_by_key_keeping_the_search(client_as, viewer):
    account = _account("Springfield MDM")
    _devices(account, [f"C02{n:07d}" for n in range(230)] + ["F9Q0000001"])
    client = client_as(viewer)
    url = reverse("dep_accounts:devices")

    page = client.get(url, {"q": "C02"}).content.decode()
    assert "Page 1 of 3" in page
    seen = re.findall(r"<code>([^<]+)</code>", page)
    for number in (2, 3):
        link = _pager_link(page, "next")
        assert "after=" in link and "q=C02" in link
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"{url}?{link}").content.decode()
        assert f"Page {number} of 3" in page
        seen += re.findall(r"<code>([^<]+)</code>", page)
    assert seen == [f"C02{n:07d}" for n in range(230)]
    assert 'rel="next"' not in page
    # Reading after a key costs what the first page costs: no OFFSET, no extra query.
    with CaptureQueriesContext(connection) as first_queries:
        client.get(url, {"q": "C02"})
    assert len(queries) == len(first_queries)
    sql = [query["sql"].upper() for query in queries.captured_queries]
    assert any("SERIAL_NUMBER" in q and "LIMIT 101" in q for q in sql), sql
    assert not any("OFFSET" in q for q in sql), sql

    back = client.get(f"{url}?{_pager_link(page, 'prev')}").content.decode()
    assert "Page 2 of 3" in back
    assert re.findall(r"<code>([^<]+)</code>", back) == seen[100:200]
    first = client.get(f"{url}?{_pager_link(back, 'prev')}").content.decode()
    assert "Page 1 of 3" in first and 'rel="prev"' not in first


# Enrollment Profiles


def test_profiles_are_paginated_by_account_in_the_same_queries_whatever_their_number(
    client_as, admin, licence
):
    client = client_as(admin)
    url = reverse("dep_accounts:profiles")
    for n in range(3):
        EnrollmentProfile.objects.create(
            account=_account(f"Server {n:03d}", days=100 + n), name=f"Profile {n}", url="https://x"
        )
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(3, 60):
        EnrollmentProfile.objects.create(
            account=_account(f"Server {n:03d}", days=100 + n), name=f"Profile {n}", url="https://x"
        )
    with CaptureQueriesContext(connection) as many:
        first = client.get(url).content.decode()

    assert len(many) == len(few)
    assert first.count('class="card card-flush"') == 25
    assert "Server 000" in first and "Server 025" not in first
    last = client.get(url, {"page": 3}).content.decode()
    assert last.count('class="card card-flush"') == 10
    assert "Profile 59" in last and "Page 3 of 3" in last


def test_profiles_are_listed_by_account_with_their_actions(client_as, admin, dep_account, licence):
    EnrollmentProfile.objects.create(
        account=dep_account, name="Staff iPads", url="https://mdm.example/enroll"
    )
    page = client_as(admin).get(reverse("dep_accounts:profiles")).content.decode()
    assert "Staff iPads" in page and "Springfield MDM" in page
    assert "Make default for its account" in page and "Assign to devices" in page
    assert "Assign to new devices automatically" in page


def test_profile_actions_are_unavailable_with_the_reason_when_the_licence_expired(
    client_as, admin, dep_account
):
    EnrollmentProfile.objects.create(
        account=dep_account, name="Staff iPads", url="https://mdm.example/enroll"
    )
    page = client_as(admin).get(reverse("dep_accounts:profiles")).content.decode()
    assert "Profile actions are unavailable" in page and "licence" in page
    assert "Make default for its account" not in page


def test_adding_a_profile_defines_it_at_apple(client_as, admin, dep_account, licence):
    client = client_as(admin)
    form = client.get(reverse("dep_accounts:profile_add"), {"account": dep_account.pk})
    assert form.status_code == 200
    response = client.post(
        reverse("dep_accounts:profile_add"),
        {
            "account": dep_account.pk,
            "name": "Staff iPads",
            "url": "https://mdm.example/enroll",
            "is_supervised": "on",
            "department": "IT",
            "support_email_address": "it@springfield.example",
        },
    )
    assert response.status_code == 302 and response.url == reverse("dep_accounts:profiles")
    profile = EnrollmentProfile.objects.get()
    assert profile.profile_uuid and (profile.is_supervised, profile.is_mandatory) == (True, False)
    assert (
        "Created the enrollment profile “Staff iPads”" in client.get(response.url).content.decode()
    )


def test_adding_a_profile_while_the_subscription_is_missing_shows_why(
    client_as, admin, dep_account
):
    response = client_as(admin).post(
        reverse("dep_accounts:profile_add"),
        {
            "account": dep_account.pk,
            "name": "Staff iPads",
            "url": "https://mdm.example/enroll",
            "is_supervised": "on",
        },
    )
    assert response.status_code == 200
    assert "licence" in response.context["form"].non_field_errors()[0]
    assert not EnrollmentProfile.objects.exists()


def test_a_profile_that_apple_would_refuse_is_caught_by_the_form(client_as, admin, dep_account):
    response = client_as(admin).post(
        reverse("dep_accounts:profile_add"),
        {"account": dep_account.pk, "name": "BYOD", "url": "https://mdm.example/enroll"},
    )
    assert response.status_code == 200
    assert "not supervised" in response.context["form"].errors["is_mdm_removable"][0]


def test_making_a_profile_the_default_for_its_account(client_as, admin, dep_account, licence):
    profile = EnrollmentProfile.objects.create(
        account=dep_account, name="Staff iPads", url="https://mdm.example/enroll"
    )
    client = client_as(admin)
    response = client.post(
        reverse("dep_accounts:profile_make_default", args=[profile.pk]),
        {"assign_to_new_devices": "on"},
    )
    assert response.url == reverse("dep_accounts:profiles")
    dep_account.refresh_from_db()
    assert (dep_account.default_profile, dep_account.assign_default_profile) == (profile, True)
    assert "is now the default profile" in client.get(response.url).content.decode()


def test_assigning_a_profile_to_selected_devices(client_as, admin, dep_account, abm, licence):
    serials = abm.sim.control.devices_add(dep_account.server_uuid, 3)
    _devices(dep_account, serials, profile_status="empty")
    client = client_as(admin)
    client.post(
        reverse("dep_accounts:profile_add"),
        {
            "account": dep_account.pk,
            "name": "Staff iPads",
            "url": "https://mdm.example/enroll",
            "is_supervised": "on",
        },
    )
    profile = EnrollmentProfile.objects.get()
    url = reverse("dep_accounts:profile_assign", args=[profile.pk])
    page = client.get(url).content.decode()
    assert all(serial in page for serial in serials)

    response = client.post(url, {"devices": serials[:2], "serials": "nosuchserial"})

    assert response.status_code == 302
    messages = client.get(response.url).content.decode()
    assert "Assigned “Staff iPads” to 2 devices." in messages
    assert "NOSUCHSERIAL: not a device of this DEP account" in messages
    assert DEPDevice.objects.filter(profile_uuid=profile.profile_uuid).count() == 2


def test_assigning_needs_at_least_one_device(client_as, admin, dep_account):
    profile = EnrollmentProfile.objects.create(
        account=dep_account, name="Staff iPads", url="https://mdm.example/enroll"
    )
    response = client_as(admin).post(
        reverse("dep_accounts:profile_assign", args=[profile.pk]), {"serials": " "}
    )
    assert response.status_code == 200
    assert "Type serial numbers or tick devices" in response.content.decode()


# Subscription


def test_the_subscription_page_shows_the_licence_and_seats(client_as, viewer, licence):
    _account("Springfield MDM", device_count=120)
    _account("Shelbyville MDM", device_count=30)
    tree = accessible.page(client_as(viewer).get(reverse("dep_accounts:subscription")))
    said = accessible.text(tree)
    assert "Business" in said and "Springfield Schools" in said
    assert "150 of 500 devices in use" in said
    assert f"{licence.valid_until:%-d %b %Y}" in said
    assert "State Active" in said
    assert not accessible.inputs(tree, "licence_file")


def test_renewing_the_subscription_by_pasting_the_licence(client_as, admin, licence):
    client = client_as(admin)
    response = client.post(
        reverse("dep_accounts:subscription"), {"document": _licence_document(days=730, plan="Pro")}
    )
    assert response.status_code == 302
    assert "Installed the Pro licence" in client.get(response.url).content.decode()
    assert SubscriptionLicence.objects.get(is_current=True).plan == "Pro"


def test_renewing_the_subscription_by_uploading_the_licence_file(client_as, admin):
    document = _licence_document(plan="Enterprise").encode()
    response = client_as(admin).post(
        reverse("dep_accounts:subscription"),
        {"licence_file": SimpleUploadedFile("springfield.licence", document)},
    )
    assert response.status_code == 302
    assert SubscriptionLicence.objects.get(is_current=True).plan == "Enterprise"


def test_a_refused_licence_shows_why_and_changes_nothing(client_as, admin, licence):
    tampered = _licence_document(days=730)[:-6] + "AAAAAA"
    response = client_as(admin).post(reverse("dep_accounts:subscription"), {"document": tampered})
    assert response.status_code == 200
    assert "signature is not valid" in response.context["form"].non_field_errors()[0]
    assert SubscriptionLicence.objects.get(is_current=True) == licence


# Audit Log


def test_the_audit_log_is_filtered_by_account_and_action(client_as, viewer, admin):
    springfield, shelbyville = _account("Springfield MDM"), _account("Shelbyville MDM")
    audit_record(
        action=AuditEvent.Action.TOKEN_RENEWED, message="Renewed Springfield.", actor=admin,
        account=springfield,
    )  # fmt: skip
    audit_record(
        action=AuditEvent.Action.TOKEN_REJECTED, message="Rejected Shelbyville.", actor=admin,
        account=shelbyville, outcome=AuditEvent.Outcome.FAILURE,
    )  # fmt: skip
    client = client_as(viewer)
    url = reverse("dep_accounts:audit_log")

    everything = accessible.rows(accessible.page(client.get(url)), "Audit events, newest first")
    by_message = {row[-1]: row for row in everything}
    assert by_message["Renewed Springfield."][1:5] == [
        "alex.admin",
        "Springfield MDM",
        AuditEvent.Action.TOKEN_RENEWED.label,
        AuditEvent.Outcome.SUCCESS.label,
    ]
    rejected = by_message["Rejected Shelbyville."]
    assert rejected[1:5] == [
        "alex.admin",
        "Shelbyville MDM",
        AuditEvent.Action.TOKEN_REJECTED.label,
        AuditEvent.Outcome.FAILURE.label,
    ]

    by_account = client.get(url, {"account": springfield.pk}).content.decode()
    assert "Renewed Springfield." in by_account and "Rejected Shelbyville." not in by_account

    by_action = client.get(url, {"action": "token_rejected"}).content.decode()
    assert "Rejected Shelbyville." in by_action and "Renewed Springfield." not in by_action


# The Django admin


def test_the_django_admin_never_shows_secrets(client, django_user_model, dep_account):
    root = django_user_model.objects.create_superuser("root", password="correct horse 42")
    client.force_login(root)
    server_token = dep_account.server_tokens.get()
    credentials = server_token_credentials(server_token)
    private_key = secret_decrypt(dep_account.key_pair.private_key_encrypted).decode()
    pages = [
        "/django-admin/dep_accounts/depaccount/",
        f"/django-admin/dep_accounts/depaccount/{dep_account.pk}/change/",
        "/django-admin/dep_accounts/servertoken/",
        f"/django-admin/dep_accounts/servertoken/{server_token.pk}/change/",
        "/django-admin/dep_accounts/keypair/",
        f"/django-admin/dep_accounts/keypair/{dep_account.key_pair.pk}/change/",
        "/django-admin/dep_accounts/auditevent/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "PRIVATE KEY" not in html and "encrypted" not in html
        for secret in (
            credentials.consumer_secret,
            credentials.access_secret,
            credentials.access_token,
        ):
            assert secret not in html
        assert private_key.splitlines()[1] not in html


def test_nobody_can_change_a_server_token_in_the_django_admin(
    client, django_user_model, dep_account
):
    root = django_user_model.objects.create_superuser("root", password="correct horse 42")
    client.force_login(root)
    assert client.get("/django-admin/dep_accounts/servertoken/add/").status_code == 403
    token = dep_account.server_tokens.get()
    response = client.post(f"/django-admin/dep_accounts/servertoken/{token.pk}/change/", {})
    assert response.status_code == 403
