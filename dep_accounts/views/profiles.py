"""Enrollment Profiles: define one, make it an account's default, assign it to devices."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from dep_accounts.forms import MakeDefaultForm, ProfileAssignForm, ProfileForm
from dep_accounts.models import DEPAccount, EnrollmentProfile
from dep_accounts.services import profiles
from dep_accounts.services.apple_access import licence_blocker, sync_blocker
from dep_accounts.services.sync import SyncUnavailableError
from dep_accounts.users import SignedInRequest
from dep_accounts.views.access import admin_required, viewer_required

ASSIGN_CANDIDATES_SHOWN = 200
FAILURES_SHOWN = 10


@viewer_required
def profile_list(request: HttpRequest) -> HttpResponse:
    accounts = DEPAccount.objects.exclude(state=DEPAccount.State.AWAITING_TOKEN).prefetch_related(
        Prefetch("profiles", queryset=EnrollmentProfile.objects.order_by("name", "id"))
    )
    licence_problem = licence_blocker()
    rows = [
        (account, sync_blocker(account=account, licence_problem=licence_problem))
        for account in accounts
    ]
    return render(request, "dep_accounts/profile_list.html", {"rows": rows})


@admin_required
def profile_add(request: SignedInRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, initial={"account": request.GET.get("account")})
    if request.method == "POST" and form.is_valid():
        account = form.cleaned_data["account"]
        try:
            profile = profiles.profile_create(
                account=account, actor=request.user, **form.profile_fields()
            )
        except (profiles.ProfileError, SyncUnavailableError) as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Created the enrollment profile “{profile.name}”.")
            return redirect("dep_accounts:profiles")
    return render(request, "dep_accounts/profile_add.html", {"form": form})


@admin_required
@require_POST
def profile_make_default(request: SignedInRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(EnrollmentProfile.objects.select_related("account"), pk=pk)
    form = MakeDefaultForm(request.POST)
    assign_to_new_devices = form.is_valid() and form.cleaned_data["assign_to_new_devices"]
    try:
        profiles.profile_make_default(
            profile=profile, actor=request.user, assign_to_new_devices=assign_to_new_devices
        )
    except (profiles.ProfileError, SyncUnavailableError) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"“{profile.name}” is now the default profile of “{profile.account.name}”."
        )
    return redirect("dep_accounts:profiles")


@admin_required
def profile_assign(request: SignedInRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(EnrollmentProfile.objects.select_related("account"), pk=pk)
    candidates = (
        profile.account.devices.filter(removed_at__isnull=True)
        .exclude(profile_status__in=["assigned", "pushed"])
        .only("serial_number", "model", "device_family")[:ASSIGN_CANDIDATES_SHOWN]
    )
    form = ProfileAssignForm(request.POST or None, candidates=list(candidates))
    if request.method == "POST" and form.is_valid():
        try:
            outcome = profiles.profile_assign(
                profile=profile, serials=form.cleaned_data["serial_list"], actor=request.user
            )
        except (profiles.ProfileError, SyncUnavailableError) as exc:
            form.add_error(None, exc.message)
        else:
            _assign_outcome_report(request, profile, outcome)
            return redirect("dep_accounts:profiles")
    context = {
        "profile": profile,
        "form": form,
        "unavailable": sync_blocker(account=profile.account),
    }
    return render(request, "dep_accounts/profile_assign.html", context)


def _assign_outcome_report(request: HttpRequest, profile: EnrollmentProfile, outcome) -> None:
    if outcome.assigned:
        assigned = ngettext(
            "Assigned “%(name)s” to %(count)d device.",
            "Assigned “%(name)s” to %(count)d devices.",
            outcome.assigned,
        )
        messages.success(request, assigned % {"name": profile.name, "count": outcome.assigned})
    if outcome.failed:
        failures = "; ".join(
            f"{serial}: {reason}"
            for serial, reason in list(outcome.failed.items())[:FAILURES_SHOWN]
        )
        more = len(outcome.failed) - FAILURES_SHOWN
        messages.warning(
            request,
            ngettext(
                "%(count)d device was not assigned.",
                "%(count)d devices were not assigned.",
                len(outcome.failed),
            )
            % {"count": len(outcome.failed)}
            + f" {failures}"
            + (f"; and {more} more." if more > 0 else "."),
        )
