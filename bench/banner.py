"""Scenario 4: what the banner adds to every page: at most one query, under 1 ms.

The DEP Accounts list is requested alternately with the banner and with a banner that reads
nothing and shows nothing (`banner_items` swapped for an empty list inside the context
processor); the difference of the medians is what the banner adds: its query and the
rendering of its items. Measured at a few accounts (a banner of a couple of items) and at many
(about 9% of them need attention). The context processor is also timed on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from django.test import Client, RequestFactory
from django.urls import reverse

from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, profiled, query_count, timed
from bench.pages import requests_timed
from bench.sizes import Size
from dep_accounts import context_processors
from dep_accounts.selectors import banner_items
from dep_accounts.services.expiry import banner_refresh


@contextmanager
def banner_off() -> Iterator[None]:
    """The context processor runs, but finds no banner and sends no query."""
    with mock.patch.object(context_processors, "banner_items", list):
        yield


def _measure(client: Client, admin, size: Size, label: str) -> dict[str, object]:
    url = reverse("dep_accounts:list")
    data.statistics_refresh()
    requests_timed(client, url, 0, "accounts-table")
    with_banner, without_banner = [], []
    for _ in range(size.banner_requests):
        with_banner.append(timed(lambda: client.get(url))[0])
        with banner_off():
            without_banner.append(timed(lambda: client.get(url))[0])
    queries_with = query_count(lambda: client.get(url))
    with banner_off():
        queries_without = query_count(lambda: client.get(url))
    profiled(f"banner-{label}", lambda: [client.get(url) for _ in range(size.page_requests)])

    request = RequestFactory().get(url)
    request.user = admin
    processor = [
        timed(lambda: context_processors.banner(request))[0] for _ in range(size.banner_requests)
    ]
    return {
        "items": len(banner_items()),
        "page_with_seconds": median(with_banner),
        "page_without_seconds": median(without_banner),
        "added_seconds": median(with_banner) - median(without_banner),
        "queries_added": queries_with - queries_without,
        "banner_items_queries": query_count(banner_items),
        "processor_seconds": median(processor),
    }


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    admin = data.admin_create()
    client = Client()
    client.force_login(admin)
    data.licence_create()
    data.accounts_create(count=size.accounts_few)
    banner_refresh()
    few = _measure(client, admin, size, f"few-{database}")
    data.accounts_create(count=size.accounts_many - size.accounts_few, first=size.accounts_few)
    banner_refresh()
    many = _measure(client, admin, size, f"many-{database}")
    return [
        _row(f"banner.few.{database}", f"4. Banner, {size.accounts_few} accounts, {label}", few),
        _row(
            f"banner.many.{database}", f"4. Banner, {size.accounts_many:,} accounts, {label}", many
        ),
    ]


def _row(key: str, scenario: str, measured: dict) -> Row:
    added = measured["added_seconds"]
    queries = measured["queries_added"]
    return Row(
        key=key,
        scenario=f"{scenario} ({measured['items']} items)",
        measured=f"{added * 1000:+.2f} ms/request, +{queries} query"
        f" (processor {ms(measured['processor_seconds'])})",
        baseline=f"page without it {ms(measured['page_without_seconds'])}",
        ratio=f"{added / measured['page_without_seconds']:+.1%}",
        target="< 1 ms, <= 1 query",
        met=added < 0.001 and queries <= 1 and measured["banner_items_queries"] <= 1,
        facts=measured,
    )
