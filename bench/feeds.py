"""Scenario 9: the `.ics` feed and `/metrics` at 1,000 accounts: the same queries as at 10, and
at most 0.05 ms of server time per account.

Both are requested through django.test.Client as a calendar app and Prometheus would: the
feed at its secret URL, /metrics with its bearer token. The time per account is the request's
median at 1,000 accounts over 1,000, fixed costs included.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.test import Client
from django.urls import reverse

from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, profiled, query_count, timed
from bench.sizes import Size
from dep_accounts.models import DEPAccount
from dep_accounts.monitoring.calendar import calendar_feed_replace

METRICS_TOKEN = "bench-metrics-token"
PER_ACCOUNT_TARGET = 0.05e-3


def _measure(client: Client, url: str, headers: dict[str, str], requests: int, expect: bytes):
    for _ in range(2):
        response = client.get(url, headers=headers)
        if response.status_code != 200 or expect not in response.content:
            raise RuntimeError(f"GET {url} answered {response.status_code} without {expect!r}.")
    seconds = [timed(lambda: client.get(url, headers=headers))[0] for _ in range(requests)]
    return median(seconds), query_count(lambda: client.get(url, headers=headers))


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    settings.METRICS_TOKEN = METRICS_TOKEN
    data.licence_create()
    admin = data.admin_create()
    feed_url = reverse("dep_accounts:calendar_feed", args=[calendar_feed_replace(user=admin)])
    feeds = {
        "ics": (feed_url, {}, b"BEGIN:VEVENT"),
        "metrics": (
            reverse("metrics"),
            {"Authorization": f"Bearer {METRICS_TOKEN}"},
            b"mdmportal_dep_token_days_left{",
        ),
    }
    client = Client()
    measured: dict[str, dict[str, tuple[float, int]]] = {name: {} for name in feeds}
    data.accounts_create(count=size.accounts_few)
    data.tokens_create()
    for name, (url, headers, expect) in feeds.items():
        measured[name]["few"] = _measure(client, url, headers, size.page_requests, expect)
    first_pk = DEPAccount.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1
    data.accounts_create(count=size.accounts_many - size.accounts_few, first=size.accounts_few)
    data.tokens_create(first_pk=first_pk)
    data.statistics_refresh()
    for name, (url, headers, expect) in feeds.items():
        measured[name]["many"] = _measure(client, url, headers, size.page_requests, expect)
        profiled(f"feeds-{name}-{database}", partial(client.get, url, headers=headers))

    titles = {"ics": "`.ics` feed", "metrics": "/metrics"}
    rows = []
    for name, sizes in measured.items():
        (few_seconds, few_queries), (many_seconds, many_queries) = sizes["few"], sizes["many"]
        per_account = many_seconds / size.accounts_many
        rows.append(
            Row(
                key=f"feeds.{name}.{database}",
                scenario=f"9. {titles[name]}, {size.accounts_many:,} accounts, {label}",
                measured=f"{ms(many_seconds)}, {per_account * 1000:.3f} ms per account, "
                f"{many_queries} queries",
                baseline=f"{size.accounts_few} accounts: {ms(few_seconds)}, {few_queries} queries",
                ratio=f"{per_account / PER_ACCOUNT_TARGET:.2f}x the target",
                target="<= 0.05 ms per account, same queries",
                met=per_account <= PER_ACCOUNT_TARGET and many_queries == few_queries,
                facts={
                    "seconds": {"few": few_seconds, "many": many_seconds},
                    "queries": {"few": few_queries, "many": many_queries},
                    "accounts": {"few": size.accounts_few, "many": size.accounts_many},
                    "per_account_seconds": per_account,
                },
            )
        )
    return rows
