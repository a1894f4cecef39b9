"""Scenario 3: the DEP Accounts list at 1,000 accounts against 10, the devices page at 100,000
devices against 1,000: the same queries, and server time within 1.3x.

Requests go through django.test.Client as a signed-in superuser (the whole middleware stack,
the templates and the banner, no network). The sizes alternate few, many, few: the data grows
and shrinks between blocks, so drift on the machine hits both sides. The list is also measured
at one full page of accounts (50), which renders as many rows as 1,000 accounts do.
"""

from __future__ import annotations

from django.db.models import Max
from django.test import Client
from django.urls import reverse

from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, profiled, query_count, ratio_text, timed
from bench.sizes import Size
from dep_accounts.models import DEPAccount, DEPDevice
from dep_accounts.services.tokens import banner_refresh
from dep_accounts.views.accounts import ACCOUNTS_PER_PAGE


def requests_timed(client: Client, url: str, count: int, expect: str) -> list[float]:
    """Seconds per request for `count` requests, after two untimed ones."""
    for _ in range(2):
        page = client.get(url)
        if page.status_code != 200 or expect not in page.content.decode():
            raise RuntimeError(f"GET {url} answered {page.status_code} without {expect!r}.")
    return [timed(lambda: client.get(url))[0] for _ in range(count)]


class PageSizes:
    """The medians and query counts of one page at each size it was measured at."""

    def __init__(self, client: Client, url: str, requests: int) -> None:
        self.client, self.url, self.requests = client, url, requests
        self.seconds: dict[str, list[float]] = {}
        self.queries: dict[str, int] = {}

    def measure(self, label: str, expect: str) -> None:
        data.statistics_refresh()
        samples = requests_timed(self.client, self.url, self.requests, expect)
        self.seconds.setdefault(label, []).extend(samples)
        self.queries[label] = query_count(lambda: self.client.get(self.url))

    def profile(self, name: str) -> None:
        profiled(name, lambda: [self.client.get(self.url) for _ in range(self.requests)])

    def facts(self) -> dict[str, object]:
        return {
            "median_seconds": {label: median(s) for label, s in self.seconds.items()},
            "queries": self.queries,
            "requests": {label: len(s) for label, s in self.seconds.items()},
        }

    def row(self, key: str, scenario: str, many: str, few: str, few_label: str) -> Row:
        many_seconds, few_seconds = median(self.seconds[many]), median(self.seconds[few])
        ratio = many_seconds / few_seconds
        same_queries = self.queries[many] == self.queries[few]
        return Row(
            key=key,
            scenario=scenario,
            measured=f"{ms(many_seconds)}, {self.queries[many]} queries",
            baseline=f"{few_label}: {ms(few_seconds)}, {self.queries[few]} queries",
            ratio=ratio_text(ratio),
            target="<= 1.3x, same queries",
            met=ratio <= 1.3 and same_queries,
            facts=self.facts(),
        )


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    client = Client()
    client.force_login(data.admin_create())
    data.licence_create()
    data.accounts_create(count=size.accounts_few)
    banner_refresh()
    extra_from = DEPAccount.objects.aggregate(last=Max("pk"))["last"] + 1

    accounts = PageSizes(client, reverse("dep_accounts:list"), size.page_requests)
    accounts.measure("few", "accounts-table")
    data.accounts_create(count=ACCOUNTS_PER_PAGE - size.accounts_few, first=size.accounts_few)
    banner_refresh()
    accounts.measure("one_page", "accounts-table")
    data.accounts_create(count=size.accounts_many - ACCOUNTS_PER_PAGE, first=ACCOUNTS_PER_PAGE)
    banner_refresh()
    accounts.measure("many", f"of {size.accounts_many} DEP accounts")
    accounts.profile(f"pages-accounts-{database}")
    data.accounts_delete_from(extra_from)
    banner_refresh()
    accounts.measure("few", "accounts-table")

    account = DEPAccount.objects.earliest("pk")
    data.devices_create(account=account, count=size.devices_few)
    extra_from = DEPDevice.objects.aggregate(last=Max("pk"))["last"] + 1
    devices = PageSizes(client, reverse("dep_accounts:devices"), size.page_requests)
    devices.measure("few", f"of {size.devices_few} devices")
    data.devices_create(
        account=account, count=size.devices_many - size.devices_few, first=size.devices_few
    )
    devices.measure("many", f"of {size.devices_many} devices")
    devices.profile(f"pages-devices-{database}")
    data.devices_delete_from(extra_from)
    devices.measure("few", f"of {size.devices_few} devices")

    name = f"3. DEP Accounts list, {size.accounts_many:,} accounts, {label}"
    return [
        accounts.row(
            f"pages.accounts.{database}", name, "many", "few", f"{size.accounts_few} accounts"
        ),
        accounts.row(
            f"pages.accounts_page.{database}",
            f"{name}, vs a full page",
            "many",
            "one_page",
            f"{ACCOUNTS_PER_PAGE} accounts",
        ),
        devices.row(
            f"pages.devices.{database}",
            f"3. Devices page, {size.devices_many:,} devices, {label}",
            "many",
            "few",
            f"{size.devices_few:,} devices",
        ),
    ]
