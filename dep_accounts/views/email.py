"""Email: a test email to the admin who asks, and the demo's caught emails (Admin > Outbox)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dep_accounts.services.outbox import email_test_queue
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required

CAUGHT_SHOWN = 50


@admin_required
@require_POST
def email_test(request: SignedInRequest) -> HttpResponse:
    if not request.user.email:
        messages.error(request, "Your user has no email address: ask a superuser to add one.")
        return redirect("dep_accounts:me")
    email_test_queue(recipient=request.user.email, requested_by=request.user.get_username())
    messages.success(
        request,
        f"Test email queued for {request.user.email}. The Audit Log shows whether the mail "
        "server took it (Email sent) or why not (Email not delivered).",
    )
    return redirect("dep_accounts:me")


@dataclass(frozen=True)
class CaughtEmail:
    received_at: datetime | None
    sender: str
    recipients: str
    subject: str
    body: str


@admin_required
def outbox(request: HttpRequest) -> HttpResponse:
    """What the demo's mail catcher received: only in DEBUG, where no email leaves the machine."""
    if not settings.DEBUG:
        raise Http404("The outbox exists only in the demo (DEBUG).")
    emails = sorted(_caught(), key=lambda e: e.received_at or datetime.min, reverse=True)
    return render(
        request, "dep_accounts/outbox.html", {"emails": emails[:CAUGHT_SHOWN], "total": len(emails)}
    )


def _caught() -> list[CaughtEmail]:
    if not settings.MAILCATCHER_DIR.exists():
        return []
    maildir = mailbox.Maildir(settings.MAILCATCHER_DIR, create=False)
    caught = []
    for message in _messages(maildir):
        body = message.get_body(preferencelist=("plain",))
        caught.append(
            CaughtEmail(
                received_at=parsedate_to_datetime(message["Date"]) if message["Date"] else None,
                sender=str(message["From"] or ""),
                recipients=str(message["To"] or ""),
                subject=str(message["Subject"] or ""),
                body=body.get_content() if body is not None else "",
            )
        )
    return caught


def _messages(maildir: mailbox.Maildir) -> Iterator[EmailMessage]:
    """Each caught email with the modern email API (get_body); one removed meanwhile is skipped.

    Read by key rather than through a Maildir factory, which typeshed types as MaildirMessage."""
    for key in maildir.iterkeys():
        try:
            yield message_from_bytes(maildir.get_bytes(key), policy=default_policy)
        except KeyError:
            continue
