"""Scenario 3: the DEP Accounts list at 1,000 accounts against 10, the devices page at 100,000
devices against 1,000: the same queries, and server time within 1.3x.

Requests go through django.test.Client signed in as a member of the admins group, not a
superuser (the whole middleware stack, the templates and the banner, no network). The sizes
alternate few, many, few: the data grows and shrinks between blocks, so drift on the machine
hits both sides. The list is also measured
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
from dep_accounts.services.expiry import banner_refresh
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
        self.rows: dict[str, int] = {}

    def measure(self, label: str, expect: str) -> None:
        data.statistics_refresh()
        samples = requests_timed(self.client, self.url, self.requests, expect)
        self.seconds.setdefault(label, []).extend(samples)
        self.queries[label] = query_count(lambda: self.client.get(self.url))
        # Table rows rendered, header included: the sizes must differ for parity to mean much.
        self.rows[label] = self.client.get(self.url).content.count(b"<tr")

    def profile(self, name: str) -> None:
        profiled(name, lambda: [self.client.get(self.url) for _ in range(self.requests)])

    def facts(self) -> dict[str, object]:
        return {
            "median_seconds": {label: median(s) for label, s in self.seconds.items()},
            "queries": self.queries,
            "rows": self.rows,
            "requests": {label: len(s) for label, s in self.seconds.items()},
        }

    def row(
        self,
        key: str,
        scenario: str,
        many: str,
        few: str,
        few_label: str,
        *,
        limit: float = 1.3,
        same_queries: bool = True,
    ) -> Row:
        many_seconds, few_seconds = median(self.seconds[many]), median(self.seconds[few])
        ratio = many_seconds / few_seconds
        queries_met = self.queries[many] == self.queries.get(few, self.queries[many])
        return Row(
            key=key,
            scenario=scenario,
            measured=f"{ms(many_seconds)}, {self.queries[many]} queries",
            baseline=f"{few_label}: {ms(few_seconds)}"
            + (f", {self.queries[few]} queries" if few in self.queries else ""),
            ratio=ratio_text(ratio),
            target=f"<= {limit}x" + (", same queries" if same_queries else ""),
            met=ratio <= limit and (queries_met or not same_queries),
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
    account = DEPAccount.objects.earliest("pk")
    data.devices_create(account=account, count=size.devices_few)

    accounts = PageSizes(client, reverse("dep_accounts:list"), size.page_requests)
    # Pages that filter by account, at a few accounts and at many: no list of every account.
    by_account = {
        "devices": PageSizes(client, reverse("dep_accounts:devices"), size.page_requests),
        "audit": PageSizes(client, reverse("dep_accounts:audit_log"), size.page_requests),
    }
    accounts.measure("few", "accounts-table")
    for page in by_account.values():
        page.measure("few", "filter-bar")
    data.accounts_create(count=ACCOUNTS_PER_PAGE - size.accounts_few, first=size.accounts_few)
    banner_refresh()
    accounts.measure("one_page", "accounts-table")
    data.accounts_create(count=size.accounts_many - ACCOUNTS_PER_PAGE, first=ACCOUNTS_PER_PAGE)
    banner_refresh()
    accounts.measure("many", f"of {size.accounts_many} DEP accounts")
    for page in by_account.values():
        page.measure("many", "filter-bar")
    accounts.profile(f"pages-accounts-{database}")
    data.accounts_delete_from(extra_from)
    banner_refresh()
    accounts.measure("few", "accounts-table")
    for page in by_account.values():
        page.measure("few", "filter-bar")

    extra_from = DEPDevice.objects.aggregate(last=Max("pk"))["last"] + 1
    devices = PageSizes(client, reverse("dep_accounts:devices"), size.page_requests)
    devices.measure("few", "<code>")
    data.devices_create(
        account=account, count=size.devices_many - size.devices_few, first=size.devices_few
    )
    devices.measure("many", f"of {size.devices_many} devices")
    # A serial-number prefix matching about 1% of the devices, against the unfiltered page.
    search = PageSizes(client, reverse("dep_accounts:devices") + "?q=C02A", size.page_requests)
    for _ in range(2):
        search.measure("search", "<code>C02A")
        search.seconds.setdefault("all", []).extend(
            requests_timed(client, devices.url, size.page_requests, "<code>")
        )
    devices.profile(f"pages-devices-{database}")
    data.devices_delete_from(extra_from)
    devices.measure("few", "<code>")

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
        *(
            page.row(
                f"pages.{key}_accounts.{database}",
                f"3. {title} page, {size.accounts_many:,} accounts, {label}",
                "many",
                "few",
                f"{size.accounts_few} accounts",
                limit=1.2,
            )
            for key, title in (("devices", "Devices"), ("audit", "Audit Log"))
            for page in [by_account[key]]
        ),
        search.row(
            f"pages.devices_search.{database}",
            f"3. Devices, serial-prefix search, {size.devices_many:,} devices, {label}",
            "search",
            "all",
            "unfiltered",
            limit=1.2,
            same_queries=False,
        ),
        devices.row(
            f"pages.devices.{database}",
            f"3. Devices page, {size.devices_many:,} devices, {label}",
            "many",
            "few",
            f"{size.devices_few:,} devices",
        ),
    ]
