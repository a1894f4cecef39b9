"""Every URL of the portal, for every role, for GET and POST: the expected answer of each.

The URLs are read from the resolver, not listed by hand: a URL added without an entry in the
tables below fails `test_every_url_has_an_expected_answer_for_every_role`. The Django admin at
/django-admin/ follows its own rule (staff only), so it has a table of its own.

Beyond the status of each URL: ids of objects that do not exist, or no longer exist, answer 404
on every route that takes one; a viewer reaches no write route whatever the id; ids of another
account's objects do not reach into it; every POST needs a CSRF token; repeated failed sign-ins
lock the username out of both sign-in pages. Every refusal says why, and a user without a role
sees no banner; viewers see no button that changes things; signing in lands on the dashboard
and logging out is a POST from the user menu.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from dep_accounts.apple import keypair as apple_keypair
from dep_accounts.apple import token as apple_token
from dep_accounts.encryption import secret_encrypt
from dep_accounts.models import (
    AuditEvent,
    DEPAccount,
    DEPDevice,
    EnrollmentProfile,
    KeyPair,
    ServerToken,
    SubscriptionLicence,
)
from dep_accounts.roles import VIEWERS
from dep_accounts.services.expiry import banner_refresh
from tests import accessible

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "no role", "viewer", "admin", "superuser"]
METHODS = ["GET", "POST"]

# An expected answer: a status code, or a redirect to one of the two sign-in pages.
LOGIN = "sign in"
ADMIN_LOGIN = "admin sign in"

# fmt: off
# The console's pages, by URL name. Each row: (GET, POST) for an anonymous user, a user with
# no role, a viewer, an admin and a superuser.
Row = tuple[tuple[int | str, int | str], ...]
CONSOLE: dict[str, Row] = {
    #                        anonymous       no role     viewer      admin       superuser
    "dashboard":            ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "list":                 ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "add":                  ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 302), (200, 302)),
    "add_token":            ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    "add_confirm":          ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "detail":               ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "edit":                 ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    "public_key":           ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "sync":                 ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "full_resync":          ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "devices":              ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "profiles":             ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "profile_add":          ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    "profile_assign":       ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    "profile_make_default": ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "subscription":         ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "audit_log":            ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "me":                   ((LOGIN, LOGIN), (403, 403), (200, 200), (200, 200), (200, 200)),
    "two_factor":           ((LOGIN, LOGIN), (403, 403), (302, 302), (302, 302), (302, 302)),
    "calendar":             ((LOGIN, LOGIN), (403, 403), (200, 200), (200, 200), (200, 200)),
    "webhooks":             ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    "webhook_change":       ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "bulk_renew":           ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    "bulk_renew_confirm":   ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "start_renewal":        ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "terms_check":          ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "push":                 ((LOGIN, LOGIN), (403, 403), (200, 403), (200, 200), (200, 200)),
    "push_edit":            ((LOGIN, LOGIN), (403, 403), (403, 403), (200, 200), (200, 200)),
    # Without a vendor certificate the admin is sent back with the operator's message.
    "push_request":         ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    "email_test":           ((LOGIN, LOGIN), (403, 403), (403, 403), (405, 302), (405, 302)),
    # The demo's caught emails exist only with DEBUG on; the tests run with it off.
    "outbox":               ((LOGIN, LOGIN), (403, 403), (403, 403), (404, 404), (404, 404)),
    # The secret in the URL is the only credential: a session does not open a feed.
    "calendar_feed":        ((404, 405),) * len(ROLES),
}
# django.contrib.auth: signing in and out, and changing or resetting one's own password.
AUTH: dict[str, Row] = {
    #                           anonymous       no role     viewer      admin       superuser
    "login":                   ((200, 200),     (200, 200), (200, 200), (200, 200), (200, 200)),
    "logout":                  ((405, 302),     (405, 302), (405, 302), (405, 302), (405, 302)),
}
# django-allauth's sign-in steps (issue 16): the same routes under allauth's names, a TOTP code
# after the password, confirming the password again, and the single sign-on round trip.
SIGN_IN: dict[str, Row] = {
    "account_login":           ((200, 200),     (200, 200), (200, 200), (200, 200), (200, 200)),
    "account_logout":          ((405, 302),     (405, 302), (405, 302), (405, 302), (405, 302)),
    # Nobody signs up: every answer is the "Sign up closed" page.
    "account_signup":          ((200, 200),) * len(ROLES),
    "account_inactive":        ((200, 405),) * len(ROLES),
    "account_reauthenticate":  ((LOGIN, LOGIN), (200, 200), (200, 200), (200, 200), (200, 200)),
    "mfa_authenticate":        ((302, 302),     (302, 302), (302, 302), (302, 302), (302, 302)),
    "mfa_reauthenticate":      ((LOGIN, LOGIN), (302, 302), (302, 302), (302, 302), (302, 302)),
    "socialaccount_login_cancelled": ((200, 405),) * len(ROLES),
    "socialaccount_login_error":     ((401, 405),) * len(ROLES),
    "socialaccount_signup":    ((302, 302),     (302, 302), (302, 302), (302, 302), (302, 302)),
    # GET asks to confirm (allauth never signs in on a GET); POST goes to the IdP.
    "openid_connect_login":    ((200, 302),     (200, 302), (200, 302), (200, 302), (200, 302)),
    # Without the state this browser started, the IdP's answer is refused.
    "openid_connect_callback": ((401, 401),) * len(ROLES),
}
# The JSON API takes API tokens only, never the session: every signed-in role is a stranger.
NO_SESSION: Row = ((401, 401),) * len(ROLES)
API: dict[str, Row] = {
    "api:dep_accounts":           NO_SESSION,
    "api:dep_account":            NO_SESSION,
    "api:dep_account_public_key": NO_SESSION,
    "api:dep_account_token":      NO_SESSION,
    "api:dep_account_sync":       NO_SESSION,
    "api:push_certificate":         NO_SESSION,
    "api:push_certificate_request": NO_SESSION,
    "api:push_certificate_upload":  NO_SESSION,
    "api:audit_log":              NO_SESSION,
    "api:openapi":                ((200, 405),) * len(ROLES),
}
# Prometheus sends METRICS_TOKEN, never a session; without METRICS_TOKEN there are no metrics.
METRICS: dict[str, Row] = {"metrics": ((404, 405),) * len(ROLES)}
PORTAL = (
    {f"dep_accounts:{name}": row for name, row in CONSOLE.items()} | AUTH | SIGN_IN | API | METRICS
)

# The Django admin: a superuser's (GET, POST) on each URL, by URL name or, for the unnamed ones,
# by route. The portal's rows cannot be added or changed there (that goes through the console,
# which writes the audit log), nor deleted; a superuser can only look at them.
DJANGO_ADMIN_SUPERUSER: dict[str, tuple[int, int]] = {
    "admin:index":                                       (200, 200),
    "admin:login":                                       (302, 200),
    "admin:logout":                                      (405, 302),
    "admin:password_change":                             (200, 200),
    "admin:password_change_done":                        (200, 405),
    "admin:autocomplete":                                (403, 405),
    "admin:jsi18n":                                      (200, 405),
    "admin:view_on_site":                                (302, 302),
    "admin:app_list":                                    (200, 200),
    "django-admin/(?P<url>.*)$":                         (404, 404),
    "admin:auth_group_changelist":                       (200, 200),
    "admin:auth_group_add":                              (200, 200),
    "admin:auth_group_history":                          (200, 200),
    "admin:auth_group_delete":                           (200, 200),
    "admin:auth_group_change":                           (200, 200),
    "django-admin/auth/group/<path:object_id>/":         (302, 302),
    "admin:auth_user_password_change":                   (200, 200),
    "admin:auth_user_changelist":                        (200, 200),
    "admin:auth_user_add":                               (200, 200),
    "admin:auth_user_history":                           (200, 200),
    "admin:auth_user_delete":                            (200, 200),
    "admin:auth_user_change":                            (200, 200),
    "django-admin/auth/user/<path:object_id>/":          (302, 302),
    "admin:axes_accessattempt_changelist":               (200, 200),
    "admin:axes_accessattempt_add":                      (403, 403),
    "admin:axes_accessattempt_history":                  (200, 200),
    "admin:axes_accessattempt_delete":                   (200, 200),
    "admin:axes_accessattempt_change":                   (200, 302),
    "django-admin/axes/accessattempt/<path:object_id>/": (302, 302),
    "admin:axes_accesslog_changelist":                   (200, 200),
    "admin:axes_accesslog_add":                          (403, 403),
    "admin:axes_accesslog_history":                      (200, 200),
    "admin:axes_accesslog_delete":                       (200, 200),
    "admin:axes_accesslog_change":                       (200, 302),
    "django-admin/axes/accesslog/<path:object_id>/":     (302, 302),
    "admin:axes_accessfailurelog_changelist":            (200, 200),
    "admin:axes_accessfailurelog_add":                   (403, 403),
    "admin:axes_accessfailurelog_history":               (200, 200),
    "admin:axes_accessfailurelog_delete":                (200, 200),
    "admin:axes_accessfailurelog_change":                (200, 302),
    "django-admin/axes/accessfailurelog/<path:object_id>/": (302, 302),
    "admin:dep_accounts_depaccount_changelist":          (200, 200),
    "admin:dep_accounts_depaccount_add":                 (403, 403),
    "admin:dep_accounts_depaccount_history":             (200, 200),
    "admin:dep_accounts_depaccount_delete":              (403, 403),
    "admin:dep_accounts_depaccount_change":              (200, 403),
    "django-admin/dep_accounts/depaccount/<path:object_id>/": (302, 302),
    "admin:dep_accounts_keypair_changelist":             (200, 200),
    "admin:dep_accounts_keypair_add":                    (403, 403),
    "admin:dep_accounts_keypair_history":                (200, 200),
    "admin:dep_accounts_keypair_delete":                 (403, 403),
    "admin:dep_accounts_keypair_change":                 (200, 403),
    "django-admin/dep_accounts/keypair/<path:object_id>/": (302, 302),
    "admin:dep_accounts_servertoken_changelist":         (200, 200),
    "admin:dep_accounts_servertoken_add":                (403, 403),
    "admin:dep_accounts_servertoken_history":            (200, 200),
    "admin:dep_accounts_servertoken_delete":             (403, 403),
    "admin:dep_accounts_servertoken_change":             (200, 403),
    "django-admin/dep_accounts/servertoken/<path:object_id>/": (302, 302),
    "admin:dep_accounts_enrollmentprofile_changelist":   (200, 200),
    "admin:dep_accounts_enrollmentprofile_add":          (403, 403),
    "admin:dep_accounts_enrollmentprofile_history":      (200, 200),
    "admin:dep_accounts_enrollmentprofile_delete":       (403, 403),
    "admin:dep_accounts_enrollmentprofile_change":       (200, 403),
    "django-admin/dep_accounts/enrollmentprofile/<path:object_id>/": (302, 302),
    "admin:dep_accounts_depdevice_changelist":           (200, 200),
    "admin:dep_accounts_depdevice_add":                  (403, 403),
    "admin:dep_accounts_depdevice_history":              (200, 200),
    "admin:dep_accounts_depdevice_delete":               (403, 403),
    "admin:dep_accounts_depdevice_change":               (200, 403),
    "django-admin/dep_accounts/depdevice/<path:object_id>/": (302, 302),
    "admin:dep_accounts_subscriptionlicence_changelist": (200, 200),
    "admin:dep_accounts_subscriptionlicence_add":        (403, 403),
    "admin:dep_accounts_subscriptionlicence_history":    (200, 200),
    "admin:dep_accounts_subscriptionlicence_delete":     (403, 403),
    "admin:dep_accounts_subscriptionlicence_change":     (200, 403),
    "django-admin/dep_accounts/subscriptionlicence/<path:object_id>/": (302, 302),
    "admin:dep_accounts_auditevent_changelist":          (200, 200),
    "admin:dep_accounts_auditevent_add":                 (403, 403),
    "admin:dep_accounts_auditevent_history":             (200, 200),
    "admin:dep_accounts_auditevent_delete":              (403, 403),
    "admin:dep_accounts_auditevent_change":              (200, 403),
    "django-admin/dep_accounts/auditevent/<path:object_id>/": (302, 302),
}
# fmt: on

# Everyone but staff is sent to the admin's sign-in page from every admin URL, except these.
DJANGO_ADMIN_NOT_STAFF: dict[str, tuple[int | str, int | str]] = {
    "admin:login": (200, 200),
    "admin:logout": (302, 302),
}

# What the lead quotes: URL x role x method combinations checked by the table test.
URLS_CHECKED = 140
COMBINATIONS_CHECKED = URLS_CHECKED * len(ROLES) * len(METHODS)


@dataclass(frozen=True)
class Route:
    """One URL pattern of the resolver, with the full route it answers."""

    key: str
    route: str
    name: str | None
    groups: tuple[str, ...]

    @property
    def is_django_admin(self) -> bool:
        return self.route.startswith("django-admin/")


def _routes(
    patterns, prefix: str = "", namespace: str = "", outer: tuple[str, ...] = ()
) -> list[Route]:
    routes = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            # An include's own parameters (allauth's <provider_id>/) belong to every route in it.
            groups = (*outer, *pattern.pattern.regex.groupindex)
            routes += _routes(pattern.url_patterns, prefix + str(pattern.pattern), inner, groups)
        else:
            assert isinstance(pattern, URLPattern)
            route = prefix + str(pattern.pattern)
            name = f"{namespace}{pattern.name}" if pattern.name else None
            groups = (*outer, *pattern.pattern.regex.groupindex)
            routes.append(Route(key=name or route, route=route, name=name, groups=groups))
    return routes


ROUTES = _routes(get_resolver().url_patterns)


@pytest.fixture(scope="module")
def key_pair() -> apple_keypair.KeyPair:
    """One RSA key pair for every account of this module: generating one per test is slow."""
    return apple_keypair.key_pair_generate(common_name="mdmportal-dep-reliability-access")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(
        "sam.super", "sam.super@springfield.example", "correct horse 42"
    )


def _account(key_pair: apple_keypair.KeyPair, **fields) -> DEPAccount:
    account = DEPAccount.objects.create(**fields)
    KeyPair.objects.create(
        account=account,
        private_key_encrypted=secret_encrypt(key_pair.private_key_pem),
        certificate_pem=key_pair.certificate_pem.decode(),
    )
    return account


def _synced_account(key_pair: apple_keypair.KeyPair, *, server: str) -> DEPAccount:
    """An account with a current token, a profile, a device and an audit event: one of each."""
    expires = timezone.now() + timedelta(days=300)
    account = _account(
        key_pair,
        server_name=f"{server} MDM",
        server_uuid=f"uuid-{server}",
        org_name=f"{server} Schools",
        admin_apple_id=f"it.admin@{server}.example",
        state=DEPAccount.State.OK,
        token_expires_at=expires,
    )
    credentials = apple_token.ServerTokenCredentials(
        consumer_key=f"CK_{server}",
        consumer_secret=f"CS_{server}",
        access_token=f"AT_{server}",
        access_secret=f"AS_{server}",
        access_token_expiry=expires,
    )
    ServerToken.objects.create(
        account=account,
        secrets_encrypted=secret_encrypt(credentials.to_json().encode()),
        access_token_expiry=expires,
        consumer_key_fingerprint=f"fingerprint-{server}",
        server_uuid=account.server_uuid,
    )
    EnrollmentProfile.objects.create(
        account=account, profile_uuid=f"P-{server}", name=f"{server} iPads", url="https://e.example"
    )
    DEPDevice.objects.create(account=account, serial_number=f"C02{server.upper()}0001")
    AuditEvent.objects.create(account=account, action="sync", message=f"Synced {server}.")
    return account


@pytest.fixture
def users(admin, viewer, nobody, superuser) -> dict[str, object]:
    return {
        "anonymous": None,
        "no role": nobody,
        "viewer": viewer,
        "admin": admin,
        "superuser": superuser,
    }


@pytest.fixture
def objects(key_pair, licence, users, sso) -> dict[str, object]:
    """A real object for every kind of id a URL takes."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    account = _synced_account(key_pair, server="springfield")
    attempt = {"user_agent": "pytest", "ip_address": "192.0.2.1", "username": "mallory"}
    return {
        "account": account,
        "awaiting": _account(key_pair),
        "profile": account.profiles.get(),
        "licence": licence,
        "auth.group": Group.objects.get(name=VIEWERS),
        "auth.user": users["no role"],
        "axes.accessattempt": AccessAttempt.objects.create(failures_since_start=1, **attempt),
        "axes.accesslog": AccessLog.objects.create(**attempt),
        "axes.accessfailurelog": AccessFailureLog.objects.create(**attempt),
        "dep_accounts.depaccount": account,
        "dep_accounts.keypair": account.key_pair,
        "dep_accounts.servertoken": account.server_tokens.get(),
        "dep_accounts.enrollmentprofile": account.profiles.get(),
        "dep_accounts.depdevice": account.devices.get(),
        "dep_accounts.subscriptionlicence": licence,
        "dep_accounts.auditevent": account.audit_events.get(),
    }


# Which object a console URL's <int:pk> is.
PK_OF = {
    "dep_accounts:add_token": "awaiting",
    "dep_accounts:add_confirm": "awaiting",
    "dep_accounts:detail": "account",
    "dep_accounts:edit": "account",
    "dep_accounts:public_key": "account",
    "dep_accounts:sync": "account",
    "dep_accounts:full_resync": "account",
    "dep_accounts:start_renewal": "account",
    "dep_accounts:terms_check": "account",
    "dep_accounts:profile_assign": "profile",
    "dep_accounts:profile_make_default": "profile",
}


def _path_values(route: Route, objects: dict[str, object], pk: int | None = None) -> dict:
    """Real values for the route's path parameters (or `pk` instead of the object's id)."""
    values: dict[str, object] = {}
    for group in route.groups:
        if group == "pk":
            values["pk"] = pk if pk is not None else objects[PK_OF[route.name]].pk
        elif group == "object_id" and route.name == "admin:view_on_site":
            values["object_id"] = pk if pk is not None else objects["account"].pk
        elif group == "content_type_id":
            values["content_type_id"] = ContentType.objects.get_for_model(DEPAccount).pk
        elif group in ("object_id", "id"):
            app_label, model = route.route.split("/")[1:3]
            values[group] = pk if pk is not None else objects[f"{app_label}.{model}"].pk
        elif group == "uidb64":
            values["uidb64"] = urlsafe_base64_encode(force_bytes(objects["auth.user"].pk))
        elif group == "token":
            values["token"] = default_token_generator.make_token(objects["auth.user"])
        elif group == "account_id":
            values["account_id"] = pk if pk is not None else objects["account"].pk
        elif group == "app_label":
            values["app_label"] = "dep_accounts"
        elif group == "url":
            values["url"] = "no-such-page/"
        elif group == "secret":
            values["secret"] = "no-such-calendar-feed"
        elif group == "provider_id":
            values["provider_id"] = "demo"
        else:
            raise AssertionError(f"No value for <{group}> of {route.route}: add one here.")
    return values


def _url(route: Route, values: dict) -> str:
    if route.name:
        return reverse(route.name, kwargs=values)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m[1]]), route.route)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m[1]]), path)
    return "/" + path.lstrip("^").rstrip("$")


def _expected(route: Route, role: str) -> tuple[int | str, int | str]:
    if not route.is_django_admin:
        return PORTAL[route.key][ROLES.index(role)]
    if role == "superuser":
        return DJANGO_ADMIN_SUPERUSER[route.key]
    return DJANGO_ADMIN_NOT_STAFF.get(route.key, (ADMIN_LOGIN, ADMIN_LOGIN))


def _answer(response) -> int | str:
    """The status, or which sign-in page a redirect sends to."""
    if response.status_code == 302:
        if response.url.startswith(reverse("login") + "?next="):
            return LOGIN
        if response.url.startswith(reverse("admin:login") + "?next="):
            return ADMIN_LOGIN
    return response.status_code


def _client_as(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_every_url_has_an_expected_answer_for_every_role():
    keys = {route.key for route in ROUTES}
    portal = {route.key for route in ROUTES if not route.is_django_admin}
    django_admin = {route.key for route in ROUTES if route.is_django_admin}
    assert len(keys) == len(ROUTES), "two URL patterns share a name"
    assert portal == set(PORTAL), "a console URL without a row in PORTAL, or a row without a URL"
    assert django_admin == set(DJANGO_ADMIN_SUPERUSER), "a Django admin URL without a row"
    assert set(DJANGO_ADMIN_NOT_STAFF) <= django_admin
    assert len(ROUTES) == URLS_CHECKED
    print(
        f"{URLS_CHECKED} URLs x {len(ROLES)} roles x {len(METHODS)} methods = "
        f"{COMBINATIONS_CHECKED} combinations checked"
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_each_role_as_the_tables_say(role, users, objects):
    wrong = []
    for route in ROUTES:
        url = _url(route, _path_values(route, objects))
        assert resolve(url).route == re.sub(r"(^|/)\^", r"\1", route.route), url
        for method, expected in zip(METHODS, _expected(route, role), strict=True):
            # A fresh sign-in for each request: logging out must not change the next answer.
            client = _client_as(users[role])
            response = client.get(url) if method == "GET" else client.post(url)
            if _answer(response) != expected:
                wrong.append(f"{method} {url} as {role}: {_answer(response)}, not {expected}")
            elif response.status_code == 403 and route.key.startswith("dep_accounts:"):
                # A refusal says why: no role at all, or a viewer's read-only role.
                why = "has no role in mdmportal" if role == "no role" else "only admins can"
                if why.encode() not in response.content:
                    wrong.append(f"{method} {url} as {role}: 403 without “{why}”")
    assert not wrong, "\n".join(wrong)


def test_users_without_a_role_see_no_banner_on_any_page(users, objects):
    SubscriptionLicence.objects.all().delete()
    banner_refresh()
    admin = _client_as(users["admin"])
    dashboard = accessible.page(admin.get(reverse("dep_accounts:dashboard")))
    assert accessible.find_all(dashboard, "region", "Problems to fix")
    nobody = _client_as(users["no role"])
    for route in ROUTES:
        if route.key.startswith("dep_accounts:"):
            url = _url(route, _path_values(route, objects))
            tree = accessible.page(nobody.get(url))
            assert not accessible.find_all(tree, "region", "Problems to fix"), url


def test_viewers_do_not_see_the_buttons_that_change_things(users, objects):
    account = objects["account"]
    viewer = _client_as(users["viewer"])
    listing = accessible.page(viewer.get(reverse("dep_accounts:list")))
    detail = accessible.page(viewer.get(reverse("dep_accounts:detail", args=[account.pk])))
    admin = _client_as(users["admin"])
    admins_listing = accessible.page(admin.get(reverse("dep_accounts:list")))
    edit = f"Edit {account.name}"
    assert accessible.find_all(admins_listing, "link", "Add DEP Account")
    assert accessible.find_all(admins_listing, "link", edit)
    assert not accessible.find_all(listing, "link", "Add DEP Account")
    assert not accessible.find_all(listing, "link", edit)
    assert not accessible.find_all(detail, "button", "Sync now")
    links = [accessible.attribute(a, "href") for a in accessible.find_all(detail, "link")]
    assert reverse("dep_accounts:edit", args=[account.pk]) not in links


def test_every_post_form_carries_a_csrf_token(users, objects):
    edit_url = reverse("dep_accounts:edit", args=[objects["account"].pk])
    tree = accessible.page(_client_as(users["admin"]).get(edit_url))
    posting = [f for f in accessible.find_all(tree, "form") if accessible.attribute(f, "method")]
    assert len(posting) == 2  # Edit DEP Account, and Log out in the user menu
    for form in posting:
        tokens = accessible.inputs(form, "csrfmiddlewaretoken")
        assert len(tokens) == 1
        assert accessible.attribute(tokens[0], "type") == "hidden"


def test_sign_in_page_lands_on_the_dashboard(client, admin, licence):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert accessible.find_all(accessible.page(page), "heading", "Sign in to mdmportal")
    response = _sign_in(client, "login", "correct horse 42", data_next="/")
    assert response.status_code == 302
    assert response.url == reverse("dep_accounts:dashboard")
    assert client.get(response.url).status_code == 200


def test_log_out_is_a_post_from_the_user_menu(client, admin):
    client.force_login(admin)
    tree = accessible.page(client.get(reverse("dep_accounts:dashboard")))
    menu = accessible.find_all(tree, "button", "Log out")
    assert len(menu) == 1
    form = accessible.form_of(tree, menu[0])
    assert accessible.attribute(form, "method") == "post"
    assert accessible.attribute(form, "action") == reverse("logout")
    menu_text = accessible.text(tree)
    assert "alex.admin" in menu_text and "Admin" in menu_text
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("dep_accounts:dashboard")).status_code == 302


PK_ROUTES = [route for route in ROUTES if route.name in PK_OF]
POST_ONLY = {
    "dep_accounts:add_confirm",
    "dep_accounts:sync",
    "dep_accounts:full_resync",
    "dep_accounts:profile_make_default",
    "dep_accounts:start_renewal",
    "dep_accounts:terms_check",
}
READ_ROUTES = {"dep_accounts:detail", "dep_accounts:public_key"}


def test_ids_that_do_not_exist_answer_404_on_every_route_that_takes_one(users, objects):
    missing = DEPAccount.objects.order_by("-pk").first().pk + 1000
    admin = _client_as(users["admin"])
    for route in PK_ROUTES:
        url = _url(route, _path_values(route, objects, pk=missing))
        get_status = 405 if route.name in POST_ONLY else 404
        assert admin.get(url).status_code == get_status, url
        assert admin.post(url).status_code == 404, url


def test_the_django_admin_finds_no_object_for_an_id_that_does_not_exist(users, objects):
    superuser = _client_as(users["superuser"])
    object_routes = [r for r in ROUTES if r.is_django_admin and {"object_id", "id"} & {*r.groups}]
    assert len(object_routes) == 50
    for route in object_routes:
        response = superuser.get(_url(route, _path_values(route, objects, pk=987654)))
        if route.name in ("admin:view_on_site", "admin:auth_user_password_change"):
            assert response.status_code == 404, route.route
        elif (
            route.name
            and route.name.startswith("admin:dep_accounts_")
            and route.name.endswith("_delete")
        ):
            # The portal's rows cannot be deleted here at all, whatever the id.
            assert response.status_code == 403, route.route
        elif route.name:
            # The admin's own way to say so: back to its index with "… doesn't exist".
            assert response.status_code == 302, route.route
            assert response.url == reverse("admin:index"), route.route
        else:
            assert response.status_code == 302, route.route
            assert response.url.endswith("/987654/change/"), route.route


def test_ids_of_a_deleted_account_answer_404_everywhere(key_pair, users, objects):
    gone = _synced_account(key_pair, server="shelbyville")
    ids = {"account": gone.pk, "awaiting": gone.pk, "profile": gone.profiles.get().pk}
    gone.delete()
    admin = _client_as(users["admin"])
    for route in PK_ROUTES:
        url = _url(route, _path_values(route, objects, pk=ids[PK_OF[route.name]]))
        get_status = 405 if route.name in POST_ONLY else 404
        assert admin.get(url).status_code == get_status, url
        assert admin.post(url).status_code == 404, url
    assert not DEPDevice.objects.filter(serial_number="C02SHELBYVILLE0001").exists()
    assert not ServerToken.objects.filter(server_uuid="uuid-shelbyville").exists()


def test_a_viewer_reaches_no_write_route_whatever_the_id(key_pair, users, objects):
    other = _synced_account(key_pair, server="shelbyville")
    gone = _synced_account(key_pair, server="ogdenville")
    gone_ids = [gone.pk, gone.profiles.get().pk]
    gone.delete()
    candidate_ids = {
        objects["account"].pk,
        objects["awaiting"].pk,
        objects["profile"].pk,
        other.pk,
        other.profiles.get().pk,
        *gone_ids,
        0,
        2**31 - 1,
    }
    viewer = _client_as(users["viewer"])
    before = AuditEvent.objects.count()
    checked = 0
    for route in PK_ROUTES:
        for pk in candidate_ids:
            url = _url(route, _path_values(route, objects, pk=pk))
            response = viewer.post(url, {"display_name": "changed", "serials": "C02X"})
            assert response.status_code == 403, url
            if route.name not in READ_ROUTES:
                assert viewer.get(url).status_code == 403, url
            checked += 1
    assert checked == len(PK_ROUTES) * len(candidate_ids)
    assert AuditEvent.objects.count() == before
    assert not DEPAccount.objects.filter(display_name="changed").exists()


def test_another_accounts_profile_cannot_become_an_accounts_default(key_pair, users, objects):
    account = objects["account"]
    other = _synced_account(key_pair, server="shelbyville")
    response = _client_as(users["admin"]).post(
        reverse("dep_accounts:edit", args=[account.pk]),
        {
            "display_name": "Springfield",
            "sync_interval_minutes": 60,
            "default_profile": other.profiles.get().pk,
            "assign_default_profile": "on",
        },
    )
    assert response.status_code == 200
    assert "default_profile" in response.context["form"].errors
    account.refresh_from_db()
    assert account.default_profile is None
    assert account.display_name == ""


def test_a_profile_is_never_assigned_to_another_accounts_device(key_pair, users, objects):
    profile = objects["profile"]
    other = _synced_account(key_pair, server="shelbyville")
    device = other.devices.get()
    response = _client_as(users["admin"]).post(
        reverse("dep_accounts:profile_assign", args=[profile.pk]),
        {"serials": device.serial_number},
        follow=True,
    )
    assert response.status_code == 200
    assert "not a device of this DEP account" in response.content.decode()
    device.refresh_from_db()
    assert (device.profile_uuid, device.profile_status) == ("", "")
    assert device.account == other


def test_a_profile_cannot_be_created_for_an_account_awaiting_its_token(users, objects):
    response = _client_as(users["admin"]).post(
        reverse("dep_accounts:profile_add"),
        {"account": objects["awaiting"].pk, "name": "Sneaky", "url": "https://e.example"},
    )
    assert response.status_code == 200
    assert "account" in response.context["form"].errors
    assert not EnrollmentProfile.objects.filter(name="Sneaky").exists()


def test_a_staged_token_is_confirmed_only_for_the_account_it_was_uploaded_to(abm, admin, client):
    from dep_accounts.services.accounts import account_create

    staged = account_create(actor=admin)
    other = account_create(actor=admin)
    client.force_login(admin)
    client.post(
        reverse("dep_accounts:add_token", args=[staged.pk]),
        {"token_file": _upload("smime.p7m", abm.token_for(staged))},
    )
    response = client.post(reverse("dep_accounts:add_confirm", args=[other.pk]), follow=True)
    assert "no longer at hand" in response.content.decode()
    other.refresh_from_db()
    assert (other.state, other.server_uuid) == (DEPAccount.State.AWAITING_TOKEN, None)
    assert not other.server_tokens.exists()
    response = client.post(reverse("dep_accounts:add_confirm", args=[staged.pk]))
    assert response.status_code == 302
    assert staged.server_tokens.filter(is_current=True).count() == 1


def _upload(name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="application/pkcs7-mime")


@pytest.mark.parametrize("role", ["anonymous", "admin", "superuser"])
def test_every_post_without_a_csrf_token_is_refused(role, users, objects):
    client = Client(enforce_csrf_checks=True)
    if users[role] is not None:
        client.force_login(users[role])
    for route in ROUTES:
        url = _url(route, _path_values(route, objects))
        response = client.post(url, {"display_name": "changed"})
        assert response.status_code == 403, url
        assert b"CSRF verification failed" in response.content, url
    assert not DEPAccount.objects.filter(display_name="changed").exists()
    assert DEPAccount.objects.count() == 2


def _sign_in(client: Client, page: str, password: str, data_next: str | None = None, **extra):
    # The portal's form (django-allauth) names the field "login"; the Django admin's "username".
    field = "login" if page == "login" else "username"
    data = {field: "alex.admin", "password": password}
    if data_next:
        data["next"] = data_next
    return client.post(reverse(page), data, **extra)


def test_five_failed_sign_ins_lock_out_even_the_right_password(client, admin, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert _sign_in(client, "login", "wrong").status_code == 200
    # The fifth failure is the one that locks.
    assert _sign_in(client, "login", "wrong").status_code == 429
    response = _sign_in(client, "login", "correct horse 42")
    assert response.status_code == 429
    assert (
        b"Too many failed sign-in attempts. Try again in 15 minutes or ask another admin."
        in response.content
    )
    assert "_auth_user_id" not in client.session


def test_failures_on_both_sign_in_pages_count_together(client, admin):
    for page in ["login", "login", "admin:login", "admin:login", "login"]:
        _sign_in(client, page, "wrong")
    for page in ["login", "admin:login"]:
        response = _sign_in(client, page, "correct horse 42")
        assert response.status_code == 429, page
        assert b"Too many failed sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_a_lockout_holds_the_username_and_address_pair_and_lifts_after_the_cool_off(
    client, admin, viewer
):
    for _ in range(5):
        _sign_in(client, "login", "wrong")
    assert _sign_in(client, "login", "correct horse 42").status_code == 429
    # Another user from the same address, and the same user from another address, sign in.
    other_user = Client().post(
        reverse("login"), {"login": "val.viewer", "password": "correct horse 42"}
    )
    assert other_user.status_code == 302
    elsewhere = _sign_in(Client(), "login", "correct horse 42", REMOTE_ADDR="198.51.100.7")
    assert elsewhere.status_code == 302
    start = timezone.now()
    # Trying again during the lockout starts the cool-off again.
    with time_machine.travel(start + timedelta(minutes=14)):
        assert _sign_in(client, "login", "correct horse 42").status_code == 429
    with time_machine.travel(start + timedelta(minutes=14 + 14)):
        assert _sign_in(client, "login", "correct horse 42").status_code == 429
    with time_machine.travel(start + timedelta(minutes=14 + 14 + 16)):
        response = _sign_in(client, "login", "correct horse 42")
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(admin.pk)


PROXY = "10.0.0.2"


def test_behind_a_proxy_one_clients_failures_do_not_lock_out_another(client, admin, settings):
    """Every request comes from the proxy's address; the client is the entry the proxy added."""
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.66"}
    for _ in range(5):
        _sign_in(client, "login", "wrong", **attacker)
    assert _sign_in(client, "login", "correct horse 42", **attacker).status_code == 429
    # Nor does a forged X-Forwarded-For let the attacker pose as the admin's address: the
    # proxy appends the address it saw, and only that entry counts.
    forged = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.66"}
    for _ in range(5):
        _sign_in(Client(), "login", "wrong", **forged)

    admins_client = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    response = _sign_in(Client(), "login", "correct horse 42", **admins_client)
    assert response.status_code == 302


def test_without_trusted_proxies_x_forwarded_for_is_ignored(client, admin, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    for number in range(5):
        _sign_in(client, "login", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")
    response = _sign_in(client, "login", "correct horse 42", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 429
