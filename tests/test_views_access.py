"""Who may open which page: anonymous users sign in, users without a role get 403, viewers read,
admins do everything. Every page of the console is listed here."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_encrypt
from dep_accounts.models import DEPAccount, EnrollmentProfile, KeyPair

pytestmark = pytest.mark.django_db

READ_PAGES = [
    ("dep_accounts:dashboard", None),
    ("dep_accounts:list", None),
    ("dep_accounts:detail", "account"),
    ("dep_accounts:public_key", "account"),
    ("dep_accounts:devices", None),
    ("dep_accounts:profiles", None),
    ("dep_accounts:subscription", None),
    ("dep_accounts:audit_log", None),
]
ADMIN_PAGES = [
    ("dep_accounts:add", None),
    ("dep_accounts:add_token", "awaiting"),
    ("dep_accounts:edit", "account"),
    ("dep_accounts:profile_add", None),
    ("dep_accounts:profile_assign", "profile"),
]
ACTIONS = [
    ("dep_accounts:sync", "account"),
    ("dep_accounts:add_confirm", "awaiting"),
    ("dep_accounts:profile_make_default", "profile"),
]
ALL_PAGES = READ_PAGES + ADMIN_PAGES + ACTIONS


@pytest.fixture(scope="module")
def key_pair() -> apple_token.KeyPair:
    """One RSA key pair for every account of this module: generating one per test is slow."""
    return apple_token.key_pair_generate(common_name="mdmportal-dep-access-tests")


def _account_with_key_pair(key_pair: apple_token.KeyPair, **fields) -> DEPAccount:
    account = DEPAccount.objects.create(**fields)
    KeyPair.objects.create(
        account=account,
        private_key_encrypted=secret_encrypt(key_pair.private_key_pem),
        certificate_pem=key_pair.certificate_pem.decode(),
    )
    return account


@pytest.fixture
def listed_account(key_pair) -> DEPAccount:
    """A DEP account as the list shows it once its token is in (the token itself is not needed)."""
    return _account_with_key_pair(
        key_pair,
        server_name="Springfield MDM",
        server_uuid="6D1F2A3B-0000-4000-8000-000000000001",
        org_name="Springfield Schools",
        admin_apple_id="it.admin@springfield.example",
        state=DEPAccount.State.OK,
        token_expires_at=timezone.now() + timedelta(days=300),
    )


@pytest.fixture
def urls(listed_account, key_pair) -> dict[str, str]:
    """Every page's URL, with the objects they show."""
    awaiting = _account_with_key_pair(key_pair)
    profile = EnrollmentProfile.objects.create(
        account=listed_account,
        profile_uuid="P-1",
        name="Staff iPads",
        url="https://mdm.example/enroll",
    )
    objects = {"account": listed_account, "awaiting": awaiting, "profile": profile}
    return {
        name: reverse(name, args=[objects[kind].pk] if kind else []) for name, kind in ALL_PAGES
    }


def _ids(pages):
    return [name.split(":")[1] for name, _ in pages]


@pytest.mark.parametrize(("name", "kind"), ALL_PAGES, ids=_ids(ALL_PAGES))
def test_anonymous_users_are_sent_to_sign_in_from_every_page(client, urls, name, kind):
    for method in (client.get, client.post):
        response = method(urls[name])
        assert response.status_code == 302
        assert response.url.startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(("name", "kind"), ALL_PAGES, ids=_ids(ALL_PAGES))
def test_users_without_a_role_get_403_on_every_page(client_as, nobody, urls, name, kind):
    client = client_as(nobody)
    for method in (client.get, client.post):
        response = method(urls[name])
        assert response.status_code == 403
        assert b"has no role in mdmportal" in response.content
        assert b"banner-item" not in response.content


@pytest.mark.parametrize(("name", "kind"), READ_PAGES, ids=_ids(READ_PAGES))
def test_viewers_can_read_the_read_pages(client_as, viewer, urls, name, kind):
    assert client_as(viewer).get(urls[name]).status_code == 200


@pytest.mark.parametrize(("name", "kind"), ALL_PAGES, ids=_ids(ALL_PAGES))
def test_viewers_get_403_on_every_post(client_as, viewer, urls, name, kind):
    response = client_as(viewer).post(urls[name], {"display_name": "changed"})
    assert response.status_code == 403
    assert b"only admins can" in response.content


@pytest.mark.parametrize(("name", "kind"), ADMIN_PAGES + ACTIONS, ids=_ids(ADMIN_PAGES + ACTIONS))
def test_viewers_get_403_on_admin_pages_even_to_look(client_as, viewer, urls, name, kind):
    assert client_as(viewer).get(urls[name]).status_code == 403


@pytest.mark.parametrize(
    ("name", "kind"), READ_PAGES + ADMIN_PAGES, ids=_ids(READ_PAGES + ADMIN_PAGES)
)
def test_admins_can_open_every_page(client_as, admin, urls, name, kind):
    assert client_as(admin).get(urls[name]).status_code == 200


@pytest.mark.parametrize(("name", "kind"), ACTIONS, ids=_ids(ACTIONS))
def test_action_endpoints_accept_only_post(client_as, admin, urls, name, kind):
    assert client_as(admin).get(urls[name]).status_code == 405


def test_superusers_are_admins(client, django_user_model, listed_account):
    root = django_user_model.objects.create_superuser("root", password="correct horse 42")
    client.force_login(root)
    response = client.get(reverse("dep_accounts:edit", args=[listed_account.pk]))
    assert response.status_code == 200


def test_viewers_do_not_see_the_buttons_that_change_things(client_as, viewer, listed_account):
    client = client_as(viewer)
    listing = client.get(reverse("dep_accounts:list")).content.decode()
    detail = client.get(reverse("dep_accounts:detail", args=[listed_account.pk])).content.decode()
    assert "Add DEP Account" not in listing
    assert "edit-button" not in listing
    assert "Sync now" not in detail
    assert reverse("dep_accounts:edit", args=[listed_account.pk]) not in detail


def test_every_post_form_carries_a_csrf_token(client_as, admin, listed_account):
    client = client_as(admin)
    client.handler.enforce_csrf_checks = True
    response = client.post(reverse("dep_accounts:edit", args=[listed_account.pk]), {})
    assert response.status_code == 403
    page = client.get(reverse("dep_accounts:edit", args=[listed_account.pk])).content.decode()
    assert page.count("csrfmiddlewaretoken") == page.count('method="post"')


def test_sign_in_page_lands_on_the_dashboard(client, admin, listed_account):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b"Sign in to mdmportal" in page.content
    response = client.post(
        reverse("login"), {"login": "alex.admin", "password": "correct horse 42", "next": "/"}
    )
    assert response.status_code == 302
    assert response.url == reverse("dep_accounts:dashboard")
    assert client.get(response.url).status_code == 200


def test_log_out_is_a_post_from_the_user_menu(client_as, admin):
    client = client_as(admin)
    page = client.get(reverse("dep_accounts:dashboard")).content.decode()
    assert f'action="{reverse("logout")}"' in page
    assert "alex.admin" in page and "Admin" in page
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("dep_accounts:dashboard")).status_code == 302


def test_repeated_failed_sign_ins_lock_the_account_with_a_clear_message(client, admin, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"login": "alex.admin", "password": "wrong"})
    response = client.post(
        reverse("login"), {"login": "alex.admin", "password": "correct horse 42"}
    )
    assert b"Too many failed sign-in attempts. Try again in 15 minutes or ask another admin." in (
        response.content
    )
    assert "_auth_user_id" not in client.session
