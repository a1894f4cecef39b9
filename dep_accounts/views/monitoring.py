"""Monitoring: /metrics for Prometheus, the calendar feed, and the outgoing webhooks page."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST, require_safe

from dep_accounts.models import CalendarFeed, Webhook, WebhookDelivery
from dep_accounts.monitoring.calendar import (
    calendar_feed_ics,
    calendar_feed_owner,
    calendar_feed_replace,
    calendar_feed_url,
)
from dep_accounts.monitoring.forms import WebhookChangeForm, WebhookForm
from dep_accounts.monitoring.metrics import CONTENT_TYPE, metrics_exposition
from dep_accounts.services.webhooks import webhook_active_set, webhook_create, webhook_delete
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required, bearer_credential, role_required

DELIVERIES_SHOWN = 50


@require_safe
@never_cache
@sensitive_variables("token", "expected")
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrapes this with `Authorization: Bearer <METRICS_TOKEN>`."""
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are off: set METRICS_TOKEN to turn them on.")
    token = bearer_credential(request) or ""
    if not hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode()):
        response = HttpResponse("A valid bearer token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="mdmportal metrics"'
        return response
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE)


@require_safe
@never_cache
@sensitive_variables("secret")
def calendar_feed(request: HttpRequest, secret: str) -> HttpResponse:
    """The subscribable .ics: the secret in the URL is the only credential."""
    if calendar_feed_owner(secret=secret) is None:
        raise Http404("No calendar feed has this address.")
    response = HttpResponse(calendar_feed_ics(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="dep-token-expiries.ics"'
    return response


@role_required
@never_cache
@sensitive_variables("feed_url")
def calendar_settings(request: SignedInRequest) -> HttpResponse:
    """Viewers and admins create or replace their own feed; the new URL is shown once."""
    feed_url = None
    if request.method == "POST":
        feed_url = calendar_feed_url(calendar_feed_replace(user=request.user))
        messages.success(request, "Your calendar feed has a new address; the old one stopped.")
    context = {
        "feed": CalendarFeed.objects.filter(user=request.user).first(),
        "feed_url": feed_url,
    }
    return render(request, "dep_accounts/calendar.html", context)


@admin_required
@never_cache
@sensitive_variables("secret")
def webhooks(request: SignedInRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    labels = dict(Webhook.Event.choices)
    secret = None
    if request.method == "POST" and form.is_valid():
        webhook, secret = webhook_create(
            url=form.cleaned_data["url"], events=form.cleaned_data["events"], actor=request.user
        )
        messages.success(request, f"Added the webhook to {webhook.url_shown}. Copy its secret now.")
        form = WebhookForm()
    context = {
        "form": form,
        "secret": secret,
        "webhooks": [
            (webhook, [labels[e] for e in webhook.events if e in labels])
            for webhook in Webhook.objects.all()
        ],
        "deliveries": WebhookDelivery.objects.select_related("webhook")[:DELIVERIES_SHOWN],
    }
    return render(request, "dep_accounts/webhooks.html", context)


@admin_required
@require_POST
def webhook_change(request: SignedInRequest) -> HttpResponse:
    form = WebhookChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That webhook no longer exists. Reload the page.")
        return redirect("dep_accounts:webhooks")
    webhook, action = form.cleaned_data["webhook"], form.cleaned_data["action"]
    if action == "delete":
        webhook_delete(webhook=webhook, actor=request.user)
        messages.success(
            request, f"Deleted the webhook to {webhook.url_shown} and its delivery log."
        )
    else:
        webhook_active_set(webhook=webhook, is_active=action == "resume", actor=request.user)
        verb = "Resumed" if webhook.is_active else "Paused"
        messages.success(request, f"{verb} the webhook to {webhook.url_shown}.")
    return redirect("dep_accounts:webhooks")
