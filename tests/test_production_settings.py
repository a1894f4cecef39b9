"""Production settings, as the environment of a deployment gives them: Django's deploy checks pass
without a warning, a missing secret stops the process naming it, and gunicorn's answers carry
the security headers, a strict content security policy, HSTS and secure cookies, and refuse
oversized uploads. And the console has nothing inline that the policy would block.
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from django.urls import reverse

from tests.processes import (
    BASE_DIR,
    BIN,
    PYTHON,
    Processes,
    free_port,
    logs_on_failure,
    manage,
    portal_env,
    wait_until,
)

SECRETS = ["SECRET_KEY", "SECRETS_ENCRYPTION_KEYS", "LICENCE_PUBLIC_KEY"]
ADMIN_PASSWORD = "a long production password 42"
# The most the portal takes in a request's form fields (files aside): settings' default.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024


def _production_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    return portal_env(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        SECRETS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        LICENCE_PUBLIC_KEY=base64.b64encode(
            Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        ).decode(),
        ALLOWED_HOSTS="127.0.0.1,portal.springfield.example",
        DATABASE_URL=f"sqlite:///{var_dir / 'mdmportal.sqlite3'}",
        MDMPORTAL_VAR_DIR=str(var_dir),
        **overrides,
    )


def _manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *arguments],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_deploy_checks_pass_without_a_warning(tmp_path):
    completed = _manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues (0 silenced)." in completed.stdout


@pytest.mark.parametrize("name", SECRETS)
def test_a_missing_secret_stops_the_process_naming_it(name, tmp_path):
    env = _production_env(tmp_path)
    del env[name]
    completed = _manage(env, "check")
    assert completed.returncode != 0
    assert f"{name} is not set. Set it (or {name}_FILE) in the environment" in completed.stderr
    assert not (tmp_path / "development-secrets.json").exists()


def test_secrets_can_come_from_files(tmp_path):
    env = _production_env(tmp_path)
    for name in SECRETS:
        secret_file = tmp_path / name.lower()
        secret_file.write_text(env.pop(name) + "\n")
        env[f"{name}_FILE"] = str(secret_file)
    completed = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert completed.returncode == 0, completed.stdout + completed.stderr


@dataclass
class Browser:
    """A browser behind the TLS-terminating proxy of a deployment (X-Forwarded-Proto: https).

    This side of the proxy is plain HTTP, where Secure cookies are not sent: they are carried by
    hand, after checking each Set-Cookie header as the browser would receive it.
    """

    base_url: str
    origin: str
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, *, https: bool = True, **options):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if https:
            headers["X-Forwarded-Proto"] = "https"
        if method == "POST":
            headers |= {"Origin": self.origin, "Referer": self.origin + path}
        response = requests.request(
            method,
            self.base_url + path,
            headers=headers,
            allow_redirects=False,
            timeout=30,
            **options,
        )
        self.set_cookies += response.raw.headers.getlist("Set-Cookie")
        self.cookies |= dict(response.cookies.items())
        return response

    def form_token(self, path: str) -> str:
        page = self.request("GET", path)
        assert page.status_code == 200, path
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]

    def sign_in(self, username: str, password: str) -> requests.Response:
        token = self.form_token("/accounts/login/")
        form = {"login": username, "password": password, "csrfmiddlewaretoken": token}
        return self.request("POST", "/accounts/login/", data=form)


@pytest.fixture(scope="module")
def portal(tmp_path_factory) -> Iterator[Browser]:
    """gunicorn with the production settings, on a migrated database with one superuser."""
    var_dir = tmp_path_factory.mktemp("production")
    port = free_port()
    env = _production_env(
        var_dir,
        CSRF_TRUSTED_ORIGINS=f"https://127.0.0.1:{port}",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@e.example")
    processes = Processes(var_dir, env)
    try:
        with logs_on_failure(processes):
            gunicorn = [str(BIN / "gunicorn"), "mdmportal.wsgi", "--bind", f"127.0.0.1:{port}"]
            processes.start("gunicorn", [*gunicorn, "--workers", "1"])
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(url), timeout=30, what="gunicorn")
            yield Browser(base_url=url, origin=f"https://127.0.0.1:{port}")
    finally:
        processes.stop_all()


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/accounts/login/", allow_redirects=False, timeout=2)
    except requests.ConnectionError:
        return False
    return True


def _policy(response) -> dict[str, list[str]]:
    directives = [d.strip().split() for d in response.headers["Content-Security-Policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


def test_plain_http_is_sent_to_https(portal):
    response = portal.request("GET", "/accounts/login/", https=False)
    assert response.status_code == 301
    assert response.headers["Location"] == portal.origin + "/accounts/login/"


def test_every_answer_carries_the_security_headers_and_a_strict_policy(portal):
    assert portal.sign_in("ops", ADMIN_PASSWORD).status_code == 302
    for path in [
        "/accounts/login/",
        "/",
        "/admin/apple-dep/dep-accounts/",
        "/admin/subscription/",
        "/django-admin/",
        "/no-such-page/",
        "/static/js/console.js",
    ]:
        response = portal.request("GET", path)
        assert response.status_code in (200, 404), path
        headers = response.headers
        if headers["Content-Type"].startswith("text/html"):
            assert headers["X-Frame-Options"] == "DENY", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains; preload"
        ), path
        policy = _policy(response)
        assert policy["default-src"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"], path
        assert policy["base-uri"] == ["'none'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["form-action"] == ["'self'"], path
        # Scripts and styles come from the portal's own files only: nothing inline, no eval.
        for directive in ("script-src", "script-src-elem", "style-src", "style-src-attr"):
            assert set(policy.get(directive, ["'self'"])) == {"'self'"}, (path, directive)
        assert "unsafe" not in headers["Content-Security-Policy"], path


def test_cookies_are_secure_and_out_of_reach_of_scripts(portal):
    fresh = Browser(base_url=portal.base_url, origin=portal.origin)
    assert fresh.sign_in("ops", ADMIN_PASSWORD).status_code == 302
    cookies = {}
    for header in fresh.set_cookies:
        cookie = SimpleCookie(header)
        cookies |= {name: morsel for name, morsel in cookie.items()}
    assert {"csrftoken", "sessionid"} <= set(cookies)
    for name in ("csrftoken", "sessionid"):
        assert cookies[name]["secure"] is True, name
        assert cookies[name]["httponly"] is True, name
        assert cookies[name]["samesite"] == "Lax", name
    assert fresh.request("GET", "/").status_code == 200


def test_oversized_requests_are_refused(portal):
    assert portal.sign_in("ops", ADMIN_PASSWORD).status_code == 302
    # Form fields over the limit: 400 before any view runs.
    token = portal.form_token("/admin/subscription/")
    response = portal.request(
        "POST",
        "/admin/subscription/",
        data={"csrfmiddlewaretoken": token, "document": "x" * (DATA_UPLOAD_MAX_MEMORY_SIZE + 1)},
    )
    assert response.status_code == 400
    # A "token" of 10 MB: refused with what to do instead, and nothing kept.
    token = portal.form_token("/admin/apple-dep/dep-accounts/add/")
    added = portal.request(
        "POST", "/admin/apple-dep/dep-accounts/add/", data={"csrfmiddlewaretoken": token}
    )
    assert added.status_code == 302
    upload_path = added.headers["Location"]
    token = portal.form_token(upload_path)
    response = portal.request(
        "POST",
        upload_path,
        data={"csrfmiddlewaretoken": token},
        files={"token_file": ("smime.p7m", b"\0" * (10 * 1024 * 1024), "application/pkcs7-mime")},
    )
    assert response.status_code == 200
    assert "This file is 10.0\xa0MB; a server token is about 2 KB." in response.text
    assert 'name="token_file"' in response.text


class InlineFinder(HTMLParser):
    """What a strict content security policy would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.blocked.append("an inline <script>")
        if tag == "style":
            self.blocked.append("a <style> element")
        for name, value in attrs:
            if name == "style":
                self.blocked.append(f"a style attribute on <{tag}>")
            if name.startswith("on"):
                self.blocked.append(f"an {name} handler on <{tag}>")
            if name in ("href", "src", "action") and (value or "").startswith("javascript:"):
                self.blocked.append(f"a javascript: URL on <{tag}>")


@pytest.mark.django_db
def test_no_page_has_inline_script_or_style_the_policy_would_block(
    dep_account, licence, admin, django_user_model
):
    profile = dep_account.profiles.create(profile_uuid="P-1", name="Staff iPads", url="https://e.x")
    console = Client()
    console.force_login(admin)
    paths = [
        reverse(name, args=args)
        for name, args in [
            ("dep_accounts:dashboard", []),
            ("dep_accounts:list", []),
            ("dep_accounts:add", []),
            ("dep_accounts:detail", [dep_account.pk]),
            ("dep_accounts:edit", [dep_account.pk]),
            ("dep_accounts:devices", []),
            ("dep_accounts:profiles", []),
            ("dep_accounts:profile_add", []),
            ("dep_accounts:profile_assign", [profile.pk]),
            ("dep_accounts:subscription", []),
            ("dep_accounts:audit_log", []),
        ]
    ]
    pages = [(path, console.get(path)) for path in paths]
    pages += [("/no-such-page/", console.get("/no-such-page/"))]
    pages += [("login", Client().get(reverse("login")))]
    nobody = django_user_model.objects.create_user("noel.norole", password="correct horse 42")
    no_role = Client()
    no_role.force_login(nobody)
    pages += [("403", no_role.get(reverse("dep_accounts:dashboard")))]
    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("sam.super", password="x" * 20))
    for path in [
        "/django-admin/",
        "/django-admin/dep_accounts/depaccount/",
        f"/django-admin/dep_accounts/depaccount/{dep_account.pk}/change/",
    ]:
        pages.append((path, staff.get(path)))
    blocked = []
    for path, response in pages:
        assert response["Content-Security-Policy"], path
        finder = InlineFinder()
        finder.feed(response.content.decode())
        blocked += [f"{path}: {what}" for what in finder.blocked]
    assert not blocked, "\n".join(blocked)
    subscription = dict(pages)[reverse("dep_accounts:subscription")].content.decode()
    assert 'data-meter-percent="' in subscription
