"""Single sign-on through a real OpenID Connect provider (idpsim), and TOTP for local accounts.

The portal is driven with Django's test client; the Demo IdP is Node's oidc-provider over a
socket, and the portal's server-side calls to it (discovery, token, userinfo, JWKS) are real.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from dep_accounts.encryption import secret_decrypt
from dep_accounts.models import AuditEvent
from dep_accounts.roles import ADMINS, VIEWERS
from tests.idpsim import ADMIN, NO_ROLE, VIEWER
from tests.sign_in import password_sign_in, sign_in_through_idp, totp_enrol

pytestmark = pytest.mark.django_db


def _role(username: str, django_user_model) -> list[str]:
    user = django_user_model.objects.get(username=username)
    return list(user.groups.values_list("name", flat=True))


def test_login_page_offers_each_identity_provider(client, sso):
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Demo IdP" in page
    assert 'name="login"' in page


def test_login_page_without_identity_provider_offers_only_the_password(client):
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with" not in page
    assert 'name="password"' in page


def test_sso_admin_is_created_with_the_admin_role_from_the_groups_claim(
    client, sso, django_user_model
):
    response = sign_in_through_idp(client, sso, ADMIN)
    assert response.status_code == 302
    assert response["Location"] == reverse("dep_accounts:dashboard")
    assert _role("ada.admin", django_user_model) == [ADMINS]
    user = django_user_model.objects.get(username="ada.admin")
    assert not user.has_usable_password()
    assert client.get(reverse("dep_accounts:add")).status_code == 200
    actions = list(AuditEvent.objects.filter(actor=user).values_list("action", flat=True))
    assert sorted(actions) == [AuditEvent.Action.ROLE_CHANGED, AuditEvent.Action.SIGN_IN]


def test_sso_viewer_reads_but_cannot_change(client, sso, django_user_model):
    sign_in_through_idp(client, sso, VIEWER)
    assert _role("victor.viewer", django_user_model) == [VIEWERS]
    assert client.get(reverse("dep_accounts:list")).status_code == 200
    assert client.get(reverse("dep_accounts:add")).status_code == 403


def test_sso_user_without_a_role_is_refused_and_not_created(client, sso, django_user_model):
    response = sign_in_through_idp(client, sso, NO_ROLE)
    assert response.status_code == 403
    assert "none of your groups there gives a role in mdmportal" in response.content.decode()
    assert not django_user_model.objects.filter(username="nora.norole").exists()
    assert "_auth_user_id" not in client.session
    refusal = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_REFUSED)
    assert refusal.outcome == AuditEvent.Outcome.FAILURE
    assert refusal.details["username"] == "nora.norole"
    assert refusal.details["values"] == ["staff"]


def test_role_is_applied_again_at_every_sign_in(client, sso, settings, django_user_model):
    sign_in_through_idp(client, sso, VIEWER)
    client.post(reverse("logout"))
    settings.OIDC_PROVIDERS[0]["settings"]["admin_values"] = ["mdm-viewers"]
    sign_in_through_idp(client, sso, VIEWER)
    assert _role("victor.viewer", django_user_model) == [ADMINS]
    change = AuditEvent.objects.filter(action=AuditEvent.Action.ROLE_CHANGED).first()
    assert change.message.startswith("victor.viewer is now admin (was viewer)")


def test_user_who_lost_their_role_is_refused_and_loses_it_here(
    client, sso, settings, django_user_model
):
    sign_in_through_idp(client, sso, VIEWER)
    client.post(reverse("logout"))
    settings.OIDC_PROVIDERS[0]["settings"]["viewer_values"] = []
    assert sign_in_through_idp(client, sso, VIEWER).status_code == 403
    assert _role("victor.viewer", django_user_model) == []


def test_sign_out_ends_the_session_and_the_idp_session(client, sso):
    sign_in_through_idp(client, sso, ADMIN)
    response = client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == sso.issuer + "/session/end"
    query = parse_qs(location.query)
    assert query["client_id"] == ["mdmportal"]
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]


def test_password_sign_out_goes_back_to_the_login_page(client, admin):
    client.force_login(admin)
    response = client.post(reverse("logout"))
    assert response["Location"] == reverse("login")


def test_local_login_off_refuses_passwords_except_the_break_glass_superuser(
    client, admin, settings, django_user_model
):
    settings.LOCAL_LOGIN = False
    assert 'name="password"' not in client.get(reverse("login")).content.decode()
    assert 'name="password"' in client.get(reverse("login") + "?break-glass").content.decode()
    response = client.post(
        reverse("login"), {"login": "alex.admin", "password": "correct horse 42"}
    )
    assert response.status_code == 403
    assert "Password sign-in is off" in response.content.decode()
    assert "_auth_user_id" not in client.session
    django_user_model.objects.create_superuser("root.breakglass", "", "correct horse 42")
    response = client.post(
        reverse("login") + "?break-glass",
        {"login": "root.breakglass", "password": "correct horse 42"},
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_sso_deactivate_removes_users_the_idp_stopped_vouching_for(client, sso, django_user_model):
    sign_in_through_idp(client, sso, ADMIN)
    client.post(reverse("logout"))
    sign_in_through_idp(client, sso, VIEWER)
    client.post(reverse("logout"))
    long_ago = timezone.now() - timedelta(days=31)
    SocialAccount.objects.update(last_login=long_ago)
    # Signing in through the IdP again is what proves it still knows someone.
    sign_in_through_idp(client, sso, VIEWER)
    call_command("sso_deactivate", "--days", "30", stdout=StringIO())
    assert not django_user_model.objects.get(username="ada.admin").is_active
    assert django_user_model.objects.get(username="victor.viewer").is_active
    event = AuditEvent.objects.get(action=AuditEvent.Action.USER_DEACTIVATED)
    assert event.details == {"username": "ada.admin", "days": 30}
    # A deactivated user is turned away even though the IdP still vouches for them.
    client.post(reverse("logout"))
    response = sign_in_through_idp(client, sso, ADMIN)
    assert response["Location"] == reverse("account_inactive")
    assert "_auth_user_id" not in client.session


def test_totp_enrolment_stores_the_secret_encrypted(client, admin):
    password_sign_in(client, "alex.admin")
    totp, codes = totp_enrol(client)
    assert len(codes) == 10
    stored = Authenticator.objects.get(user=admin, type=Authenticator.Type.TOTP).data["secret"]
    assert stored != totp.secret
    assert secret_decrypt(stored.encode()).decode() == totp.secret
    seed = Authenticator.objects.get(user=admin, type=Authenticator.Type.RECOVERY_CODES)
    assert secret_decrypt(seed.data["seed"].encode())
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TWO_FACTOR_CHANGED).exists()


def test_totp_enrolment_refuses_a_wrong_code(client, admin):
    password_sign_in(client, "alex.admin")
    client.post(reverse("account_reauthenticate"), {"password": "correct horse 42"})
    client.get(reverse("dep_accounts:two_factor"))
    response = client.post(reverse("dep_accounts:two_factor"), {"code": "000000"})
    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    assert not Authenticator.objects.filter(user=admin).exists()


def test_sign_in_asks_for_a_totp_code_after_the_password(client, admin):
    password_sign_in(client, "alex.admin")
    totp, _ = totp_enrol(client)
    client.post(reverse("logout"))
    response = password_sign_in(client, "alex.admin")
    assert response["Location"] == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("dep_accounts:dashboard")).status_code == 302
    response = client.post(reverse("mfa_authenticate"), {"code": "123456"})
    assert "_auth_user_id" not in client.session
    response = client.post(reverse("mfa_authenticate"), {"code": totp.now()})
    assert response["Location"] == reverse("dep_accounts:dashboard")
    assert client.get(reverse("dep_accounts:dashboard")).status_code == 200
    event = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).first()
    assert event.details == {"method": "password", "two_factor": True}


def test_a_recovery_code_works_once(client, admin):
    password_sign_in(client, "alex.admin")
    _, codes = totp_enrol(client)
    client.post(reverse("logout"))
    password_sign_in(client, "alex.admin")
    client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert client.session["_auth_user_id"] == str(admin.pk)
    client.post(reverse("logout"))
    password_sign_in(client, "alex.admin")
    response = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_admins_must_enrol_when_the_setting_says_so(client, admin, viewer, settings):
    settings.MFA_REQUIRED_FOR_ADMINS = True
    password_sign_in(client, "alex.admin")
    response = client.get(reverse("dep_accounts:list"))
    assert response["Location"] == reverse("dep_accounts:two_factor")
    totp_enrol(client)
    assert client.get(reverse("dep_accounts:list")).status_code == 200
    client.post(reverse("logout"))
    password_sign_in(client, "val.viewer")
    assert client.get(reverse("dep_accounts:list")).status_code == 200


def test_api_keys_are_unchanged_by_mandatory_two_factor(client, admin, settings):
    from dep_accounts.services.api_tokens import api_token_create

    settings.MFA_REQUIRED_FOR_ADMINS = True
    key = api_token_create(user=admin, name="script").key
    response = client.get("/api/v1/dep-accounts/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
