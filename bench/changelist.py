"""Scenario 10: the DEP Accounts list against Django's own admin changelist of the same 50
accounts with the same columns, and the worker CPU a list request costs against a minimal view.

The changelist is a `ModelAdmin` registered on an admin site of the bench's own (bench.urls),
showing the list's seven columns for one page of 50 accounts, in the list's order. Both are
requested through django.test.Client as the same member of the admins group (staff, so the
admin lets them in), in alternating blocks. CPU is the process time a request takes in this
process, which is the worker here: no network, no other process.
"""

from __future__ import annotations

import time

from django.test import Client, override_settings
from django.urls import reverse

from bench import data
from bench.measure import (
    DATABASE_LABELS,
    Row,
    median,
    ms,
    profiled,
    query_count,
    ratio_text,
    timed,
)
from bench.pages import requests_timed
from bench.sizes import Size
from bench.urls import CHANGELIST_PATH, MINIMAL_PATH
from dep_accounts.models import DEPAccount
from dep_accounts.services.expiry import banner_refresh
from dep_accounts.views.accounts import ACCOUNTS_PER_PAGE


def _cpu_per_request(client: Client, url: str, count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        client.get(url)
    return (time.process_time() - start) / count


@override_settings(ROOT_URLCONF="bench.urls")
def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    client = Client()
    client.force_login(data.admin_create())
    data.licence_create()
    data.accounts_create(count=ACCOUNTS_PER_PAGE)
    banner_refresh()
    data.statistics_refresh()
    list_url = reverse("dep_accounts:list")

    ours, admin, cpu_ours, cpu_admin, cpu_minimal = [], [], [], [], []
    for _ in range(3):
        ours += requests_timed(client, list_url, size.page_requests, "accounts-table")
        admin += requests_timed(client, CHANGELIST_PATH, size.page_requests, "result_list")
        cpu_ours.append(_cpu_per_request(client, list_url, size.page_requests))
        cpu_admin.append(_cpu_per_request(client, CHANGELIST_PATH, size.page_requests))
        cpu_minimal.append(_cpu_per_request(client, MINIMAL_PATH, size.page_requests))
    rows = {
        "ours": client.get(list_url).content.count(b"<tr"),
        "admin": client.get(CHANGELIST_PATH).content.count(b"<tr"),
    }
    queries = {
        "ours": query_count(lambda: client.get(list_url)),
        "admin": query_count(lambda: client.get(CHANGELIST_PATH)),
    }
    profiled(f"changelist-list-{database}", lambda: [client.get(list_url) for _ in range(10)])
    profiled(
        f"changelist-admin-{database}", lambda: [client.get(CHANGELIST_PATH) for _ in range(10)]
    )
    # What the list costs with no row: the page around the table, the banner, the middleware.
    DEPAccount.objects.all().delete()
    banner_refresh()
    cpu_empty = median([_cpu_per_request(client, list_url, size.page_requests) for _ in range(3)])
    measured, baseline = median(ours), median(admin)
    cpu_ratio = median(cpu_ours) / median(cpu_minimal)
    return [
        Row(
            key=f"changelist.{database}",
            scenario=f"10. DEP Accounts list, {ACCOUNTS_PER_PAGE} rows, vs Django's admin "
            f"changelist, {label}",
            measured=f"{ms(measured)}, {queries['ours']} queries; CPU {ms(median(cpu_ours))}, "
            f"{cpu_ratio:.0f}x a minimal view",
            baseline=f"changelist {ms(baseline)}, {queries['admin']} queries",
            ratio=ratio_text(measured / baseline),
            target="<= 0.7x the changelist",
            met=measured <= 0.7 * baseline,
            facts={
                "list_seconds": ours,
                "changelist_seconds": admin,
                "cpu_seconds": {
                    "list": median(cpu_ours),
                    "changelist": median(cpu_admin),
                    "minimal": median(cpu_minimal),
                    "list_without_rows": cpu_empty,
                },
                "rows": rows,
                "queries": queries,
                "timed_minimal_seconds": timed(lambda: client.get(MINIMAL_PATH))[0],
            },
        )
    ]
