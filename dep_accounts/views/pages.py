"""The dashboard, the subscription licence and the audit log."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from dep_accounts.forms import AuditFilterForm, LicenceForm
from dep_accounts.models import AuditEvent, DEPAccount
from dep_accounts.selectors import audit_events, device_total, licence_current
from dep_accounts.services.licence import LicenceError, licence_install
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import viewer_required

EVENTS_PER_PAGE = 50


@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    counts = dict(DEPAccount.objects.values_list("state").annotate(n=Count("id")).order_by())
    context = {
        "state_counts": [
            (state, label, counts.get(state, 0)) for state, label in DEPAccount.State.choices
        ],
        "account_total": sum(counts.values()),
        "next_expiry": DEPAccount.objects.filter(token_expires_at__gt=timezone.now()).first(),
        "device_total": device_total(),
        "licence": licence_current(),
        "recent_events": AuditEvent.objects.select_related("account")[:8],
    }
    return render(request, "dep_accounts/dashboard.html", context)


@viewer_required
def subscription(request: SignedInRequest) -> HttpResponse:
    form = LicenceForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            licence = licence_install(document=form.cleaned_data["document"], actor=request.user)
        except LicenceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request, f"Installed the {licence.plan} licence for {licence.customer}."
            )
            return redirect("dep_accounts:subscription")
    context = {
        "form": form,
        "licence": licence_current(),
        "devices_in_use": device_total(),
    }
    return render(request, "dep_accounts/subscription.html", context)


@viewer_required
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    search = form.cleaned_data if form.is_valid() else {}
    account = search.get("account")
    events = audit_events(
        account_id=account.pk if account else None,
        account_name=search.get("account_name", ""),
        action=search.get("action", ""),
    ).only(
        "at",
        "actor_name",
        "action",
        "outcome",
        "message",
        "account__id",
        "account__display_name",
        "account__server_name",
    )
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dep_accounts/audit_log.html", {"form": form, "page": page})
