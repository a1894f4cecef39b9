"""DEP Devices: every device Apple assigned to the DEP accounts, searchable by serial number."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dep_accounts.forms import DeviceFilterForm
from dep_accounts.models import DEPDevice
from dep_accounts.selectors import accounts_named, device_total
from dep_accounts.views.access import viewer_required
from dep_accounts.views.keyset import keyset_page

DEVICES_PER_PAGE = 100
DEVICE_LIST_FIELDS = (
    "serial_number",
    "mdm_migration_deadline",
    "released_by_replacement",
    "model",
    "description",
    "os",
    "device_family",
    "profile_status",
    "profile_uuid",
    "profile_assign_time",
    "device_assigned_date",
    "removed_at",
    "account__id",
    "account__display_name",
    "account__server_name",
)


@viewer_required
def device_list(request: HttpRequest) -> HttpResponse:
    form = DeviceFilterForm(request.GET)
    devices = DEPDevice.objects.select_related("account").only(*DEVICE_LIST_FIELDS)
    if form.is_valid():
        devices = _devices_filtered(devices, form.cleaned_data)
        count = device_total() if _unfiltered(form.cleaned_data) else devices.count()
    else:
        count = devices.count()
    page = keyset_page(
        devices,
        request.GET,
        order_field="serial_number",
        per_page=DEVICES_PER_PAGE,
        count=count,
    )
    return render(request, "dep_accounts/device_list.html", {"form": form, "page": page})


def _unfiltered(search: dict) -> bool:
    return not (
        search["q"]
        or search["account"]
        or search["account_name"]
        or search["profile_status"]
        or search["removed"]
    )


def _devices_filtered(devices: QuerySet[DEPDevice], search: dict) -> QuerySet[DEPDevice]:
    # Serial numbers are upper case: a prefix match on the indexed column stays fast.
    if search["q"]:
        devices = devices.filter(serial_number__startswith=search["q"].strip().upper())
    if search["account"]:
        devices = devices.filter(account=search["account"])
    if search["account_name"]:
        devices = devices.filter(account__in=accounts_named(search["account_name"]))
    if search["profile_status"]:
        devices = devices.filter(profile_status=search["profile_status"])
    if not search["removed"]:
        devices = devices.filter(removed_at__isnull=True)
    return devices
