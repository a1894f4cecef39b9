"""The Prometheus metrics at /metrics: token expiry, state and last sync of each DEP account,
the licence's expiry and the push certificate's (under a `kind` label), read in three queries
whatever the number of accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.utils import timezone
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from dep_accounts.models import DEPAccount
from dep_accounts.selectors import licence_current
from dep_accounts.services.push.expiry import apns_credential_rows

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

State = DEPAccount.State
Result = DEPAccount.SyncResult
# A sync still running or never run has no result to report yet.
_FINISHED = {Result.OK, Result.FAILED, Result.WAITING}


class PortalCollector:
    """Reads the database on each scrape; prometheus_client writes the text format."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        account_labels = ["account_id", "server_name", "org_name"]
        expiry = GaugeMetricFamily(
            "mdmportal_dep_token_expiry_timestamp_seconds",
            "When the DEP account's current server token expires, as a Unix time.",
            labels=account_labels,
        )
        days_left = GaugeMetricFamily(
            "mdmportal_dep_token_days_left",
            "Calendar days until the server token expires (0 on the day, negative after).",
            labels=account_labels,
        )
        state = GaugeMetricFamily(
            "mdmportal_dep_account_state",
            "The DEP account's token state: 1 for the state it is in, 0 for the others.",
            labels=["account_id", "server_name", "state"],
        )
        last_sync = GaugeMetricFamily(
            "mdmportal_dep_last_sync_timestamp_seconds",
            "When the last sync with Apple finished, as a Unix time.",
            labels=["account_id", "server_name"],
        )
        last_sync_success = GaugeMetricFamily(
            "mdmportal_dep_last_sync_success",
            "Whether the last finished sync with Apple succeeded (1) or not (0).",
            labels=["account_id", "server_name"],
        )
        accounts = DEPAccount.objects.only(
            "id",
            "display_name",
            "server_name",
            "org_name",
            "state",
            "token_expires_at",
            "last_sync_at",
            "last_sync_result",
        ).order_by("id")
        for account in accounts:
            account_id = str(account.pk)
            labels = [account_id, account.server_name, account.org_name]
            days = account.days_left(self.now)
            if account.token_expires_at is not None and days is not None:
                expiry.add_metric(labels, account.token_expires_at.timestamp())
                days_left.add_metric(labels, days)
            for value in State.values:
                state.add_metric(
                    [account_id, account.server_name, value], float(account.state == value)
                )
            if account.last_sync_at is not None:
                last_sync.add_metric(
                    [account_id, account.server_name], account.last_sync_at.timestamp()
                )
            if account.last_sync_result in _FINISHED:
                last_sync_success.add_metric(
                    [account_id, account.server_name],
                    float(account.last_sync_result == Result.OK),
                )
        yield from (expiry, days_left, state, last_sync, last_sync_success)

        licence_expiry = GaugeMetricFamily(
            "mdmportal_licence_expiry_timestamp_seconds",
            "When the current subscription licence ends, as a Unix time.",
            labels=["licence_id", "customer", "plan"],
        )
        licence = licence_current()
        if licence is not None:
            licence_expiry.add_metric(
                [licence.licence_id, licence.customer, licence.plan],
                licence.valid_until.timestamp(),
            )
        yield licence_expiry
        yield from self._credentials()

    def _credentials(self) -> Iterator[Metric]:
        """Apple's other yearly credentials, one `kind` label for each (the push certificate)."""
        labels = ["kind", "name", "apple_id"]
        expiry = GaugeMetricFamily(
            "mdmportal_credential_expiry_timestamp_seconds",
            "When the credential (kind: apns) expires, as a Unix time.",
            labels=labels,
        )
        days_left = GaugeMetricFamily(
            "mdmportal_credential_days_left",
            "Calendar days until the credential expires (0 on the day, negative after).",
            labels=labels,
        )
        for row in apns_credential_rows():
            if row.expires_at is not None and row.days_left is not None:
                values = [row.kind, row.name, row.apple_id]
                expiry.add_metric(values, row.expires_at.timestamp())
                days_left.add_metric(values, row.days_left)
        yield from (expiry, days_left)


def metrics_exposition(*, now: datetime | None = None) -> bytes:
    """The metrics in Prometheus text format 0.0.4."""
    return generate_latest(PortalCollector(now=now or timezone.now()))
