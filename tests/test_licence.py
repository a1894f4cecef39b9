from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from dep_accounts.models import AuditEvent, SubscriptionLicence
from dep_accounts.services.licence import (
    LicenceError,
    licence_document_issue,
    licence_install,
    licence_is_valid,
)

pytestmark = pytest.mark.django_db


def _document(days: int = 365, **terms) -> str:
    now = timezone.now()
    return licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer=terms.get("customer", "Springfield Schools"),
        plan=terms.get("plan", "Education"),
        device_limit=terms.get("device_limit", 5000),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=days),
    )


def test_a_signed_licence_installs_and_becomes_current():
    licence = licence_install(document=_document(), actor=None)

    assert licence.is_current
    assert (licence.plan, licence.device_limit) == ("Education", 5000)
    assert licence_is_valid(licence)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LICENCE_CHANGED).count() == 1


def test_a_licence_with_edited_terms_is_refused():
    document = _document()
    prefix, payload, signature = document.split(".")
    forged = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")

    with pytest.raises(LicenceError, match="signature is not valid"):
        licence_install(document=f"{prefix}.{forged}.{signature}", actor=None)
    assert not SubscriptionLicence.objects.exists()


def test_a_licence_signed_by_another_key_is_refused():
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()
    now = timezone.now()
    document = licence_document_issue(
        signing_key=other,
        customer="Mallory",
        plan="Unlimited",
        device_limit=10**6,
        valid_from=now,
        valid_until=now + timedelta(days=3650),
    )
    with pytest.raises(LicenceError, match="signature is not valid"):
        licence_install(document=document, actor=None)


def test_something_else_than_a_licence_gets_a_clear_message():
    with pytest.raises(LicenceError, match="not an mdmportal licence file"):
        licence_install(document="hello", actor=None)


def test_a_licence_edited_in_the_database_no_longer_verifies():
    licence = licence_install(document=_document(), actor=None)
    SubscriptionLicence.objects.filter(pk=licence.pk).update(
        valid_until=timezone.now() + timedelta(days=9999)
    )
    licence.refresh_from_db()

    assert not licence_is_valid(licence)


def test_an_older_licence_does_not_replace_a_newer_one():
    licence_install(document=_document(days=365), actor=None)

    with pytest.raises(LicenceError, match="before the current one"):
        licence_install(document=_document(days=30), actor=None)
    assert SubscriptionLicence.objects.get(
        is_current=True
    ).valid_until > timezone.now() + timedelta(days=300)


def test_issue_licence_command_installs_a_licence(capsys):
    call_command("issue_licence", "--days", "30", "--install")

    document = capsys.readouterr().out.strip()
    assert document.startswith("mdmportal-licence-v1.")
    assert SubscriptionLicence.objects.get(is_current=True).document == document


def _document_between(valid_from, valid_until) -> str:
    return licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer="Springfield Schools",
        plan="Education",
        device_limit=5000,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def test_a_licence_that_is_not_valid_yet_is_refused_at_install():
    starts = timezone.now() + timedelta(days=300)

    with pytest.raises(LicenceError, match=r"starts on .*: it is not valid yet"):
        licence_install(
            document=_document_between(starts, starts + timedelta(days=365)), actor=None
        )
    assert not SubscriptionLicence.objects.exists()


def test_an_expired_licence_is_refused_unless_replace_asks_for_it():
    now = timezone.now()
    document = _document_between(now - timedelta(days=366), now - timedelta(days=1))
    licence_install(document=_document(days=365), actor=None)

    with pytest.raises(LicenceError, match="This licence expired on "):
        licence_install(document=document, actor=None)
    expired = licence_install(document=document, actor=None, replace=True)

    assert SubscriptionLicence.objects.get(is_current=True) == expired
    assert expired.valid_until < now


def test_replace_installs_an_older_licence():
    licence_install(document=_document(days=365), actor=None)

    older = licence_install(document=_document(days=30), actor=None, replace=True)

    assert SubscriptionLicence.objects.get(is_current=True) == older


def test_issue_licence_refuses_an_expired_licence_with_one_line_naming_replace():
    with pytest.raises(CommandError) as refusal:
        call_command("issue_licence", "--days", "-1", "--install")

    message = str(refusal.value)
    assert "\n" not in message
    assert message.startswith("This licence expired on ")
    assert message.endswith("To install it anyway, add --replace.")
    assert not SubscriptionLicence.objects.exists()


def test_issue_licence_replace_installs_a_licence_that_expired_yesterday(capsys):
    call_command("issue_licence", "--days", "-1", "--replace")

    licence = SubscriptionLicence.objects.get(is_current=True)
    assert licence.document == capsys.readouterr().out.strip()
    assert timezone.now() - timedelta(days=2) < licence.valid_until < timezone.now()
    assert licence.valid_until - licence.valid_from == timedelta(days=365)


def test_issue_licence_takes_explicit_dates():
    call_command(
        "issue_licence", "--valid-from", "2030-01-01", "--valid-until", "2031-01-01", "--replace"
    )

    licence = SubscriptionLicence.objects.get(is_current=True)
    assert (licence.valid_from.isoformat(), licence.valid_until.isoformat()) == (
        "2030-01-01T00:00:00+00:00",
        "2031-01-01T00:00:00+00:00",
    )


def test_issue_licence_refuses_a_licence_not_valid_yet_without_replace():
    with pytest.raises(CommandError, match=r"not valid yet.* add --replace"):
        call_command("issue_licence", "--valid-from", "2030-01-01", "--install")
