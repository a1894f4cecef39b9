"""Signing in as the tests do it: through the Demo IdP over a socket, with a password, and
enrolling TOTP from the two-factor page, as a user would."""

from __future__ import annotations

from urllib.parse import urljoin

import pyotp
import requests
from django.urls import reverse


def sign_in_through_idp(client, idp, user: tuple[str, str]):
    """Press "Sign in with Demo IdP", sign in at the IdP, and bring its answer back."""
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "demo"}))
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert location.startswith(idp.issuer + "/auth?")
    assert "code_challenge=" in location
    browser = requests.Session()
    answer = browser.get(location, allow_redirects=False)
    interaction = urljoin(idp.issuer, answer.headers["location"])
    assert "Demo IdP" in browser.get(interaction).text
    username, password = user
    answer = browser.post(
        interaction, data={"login": username, "password": password}, allow_redirects=False
    )
    while urljoin(idp.issuer, answer.headers["location"]).startswith(idp.issuer):
        answer = browser.get(urljoin(idp.issuer, answer.headers["location"]), allow_redirects=False)
    callback = answer.headers["location"]
    assert callback.startswith("http://testserver/accounts/oidc/demo/login/callback/?")
    return client.get(callback.removeprefix("http://testserver"))


def totp_enrol(client) -> tuple[pyotp.TOTP, list[str]]:
    """Turn TOTP on from the two-factor page as a user would: scan, then type one code."""
    response = client.get(reverse("dep_accounts:two_factor"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    client.post(response["Location"], {"password": "correct horse 42"})
    page = client.get(reverse("dep_accounts:two_factor"))
    assert "<svg" in page.content.decode()
    totp = pyotp.TOTP(page.context["secret"])
    response = client.post(reverse("dep_accounts:two_factor"), {"code": totp.now()})
    assert response.status_code == 200, response.content[:500]
    return totp, response.context["recovery_codes"]


def password_sign_in(client, username: str):
    return client.post(reverse("login"), {"login": username, "password": "correct horse 42"})
