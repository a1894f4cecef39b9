"""The Prometheus metrics at /metrics: token expiry, state and last sync of each DEP account,
every Apple credential's expiry and state with a `kind` label (server tokens, content tokens,
the push certificate), and the licence's expiry, in a fixed number of queries whatever the
number of rows.

The exposition is written here, in Prometheus's text format 0.0.4 ("Exposition formats",
prometheus.io/docs/instrumenting/exposition_formats/): label values escaped for backslash,
double quote and line feed, one `# HELP` and `# TYPE` per family. prometheus_client's
`generate_latest` cost about 13 µs a sample, 0.15 ms an account with a sample for each of its
seven states; the tests read the output back with prometheus_client's own parser.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from dep_accounts.models import DEPAccount
from dep_accounts.selectors import licence_current
from dep_accounts.services.credentials import credentials_all

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

State = DEPAccount.State
Result = DEPAccount.SyncResult
# A sync still running or never run has no result to report yet.
_FINISHED = {Result.OK, Result.FAILED, Result.WAITING}
_STATES = State.values

EXPIRY = "mdmportal_dep_token_expiry_timestamp_seconds"
DAYS_LEFT = "mdmportal_dep_token_days_left"
STATE = "mdmportal_dep_account_state"
LAST_SYNC = "mdmportal_dep_last_sync_timestamp_seconds"
LAST_SYNC_SUCCESS = "mdmportal_dep_last_sync_success"
LICENCE_EXPIRY = "mdmportal_licence_expiry_timestamp_seconds"
CREDENTIAL_EXPIRY = "mdmportal_credential_expiry_timestamp_seconds"
CREDENTIAL_DAYS_LEFT = "mdmportal_credential_days_left"
CREDENTIAL_STATE = "mdmportal_credential_state"
HELP = {
    EXPIRY: "When the DEP account's current server token expires, as a Unix time.",
    DAYS_LEFT: "Calendar days until the server token expires (0 on the day, negative after).",
    STATE: "The DEP account's token state: 1 for the state it is in, 0 for the others.",
    LAST_SYNC: "When the last sync with Apple finished, as a Unix time.",
    LAST_SYNC_SUCCESS: "Whether the last finished sync with Apple succeeded (1) or not (0).",
    LICENCE_EXPIRY: "When the current subscription licence ends, as a Unix time.",
    CREDENTIAL_EXPIRY: "When the Apple credential expires, as a Unix time.",
    CREDENTIAL_DAYS_LEFT: "Calendar days until the Apple credential expires (0 on the day, "
    "negative after).",
    CREDENTIAL_STATE: "The Apple credential's state: one series, of value 1, for the state it "
    "is in.",
}


def _label(value: str) -> str:
    """A label value as the text format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, samples: list[str]) -> str:
    head = f"# HELP {name} {HELP[name]}\n# TYPE {name} gauge\n"
    return head + "".join(f"{name}{sample}\n" for sample in samples)


def metrics_exposition(*, now: datetime | None = None) -> bytes:
    """The metrics in Prometheus text format 0.0.4."""
    now = now or timezone.now()
    # Calendar days, as `calendar_days_until` counts them, from today in the portal's zone.
    today = timezone.localdate(now)
    expiry: list[str] = []
    days_left: list[str] = []
    states: list[str] = []
    last_sync: list[str] = []
    last_sync_success: list[str] = []
    accounts = DEPAccount.objects.order_by("id").values_list(
        "id", "server_name", "org_name", "state", "token_expires_at", "last_sync_at",
        "last_sync_result",
    )  # fmt: skip
    for pk, server_name, org_name, state, expires_at, synced_at, result in accounts:
        server = f'account_id="{pk}",server_name="{_label(server_name)}"'
        account = f'{{{server},org_name="{_label(org_name)}"}}'
        if expires_at is not None:
            expiry.append(f"{account} {expires_at.timestamp()!r}")
            days = (timezone.localdate(expires_at) - today).days
            days_left.append(f"{account} {float(days)!r}")
        states += [
            f'{{{server},state="{value}"}} {"1.0" if state == value else "0.0"}'
            for value in _STATES
        ]
        if synced_at is not None:
            last_sync.append(f"{{{server}}} {synced_at.timestamp()!r}")
        if result in _FINISHED:
            last_sync_success.append(f"{{{server}}} {'1.0' if result == Result.OK else '0.0'}")

    licence_expiry = []
    licence = licence_current()
    if licence is not None:
        labels = (
            f'licence_id="{_label(licence.licence_id)}",customer="{_label(licence.customer)}",'
            f'plan="{_label(licence.plan)}"'
        )
        licence_expiry.append(f"{{{labels}}} {licence.valid_until.timestamp()!r}")
    # Every Apple credential of every kind; `url` (its page) tells two of one name apart.
    credential_expiry, credential_days_left, credential_state = [], [], []
    for row in credentials_all(now=now):
        labels = (
            f'kind="{_label(row.kind)}",name="{_label(row.name)}",'
            f'apple_id="{_label(row.apple_id)}",url="{_label(row.detail_url)}"'
        )
        if row.expires_at is not None and row.days_left is not None:
            credential_expiry.append(f"{{{labels}}} {row.expires_at.timestamp()!r}")
            credential_days_left.append(f"{{{labels}}} {float(row.days_left)!r}")
        credential_state.append(f'{{{labels},state="{_label(row.state)}"}} 1.0')
    families = [
        _family(EXPIRY, expiry),
        _family(DAYS_LEFT, days_left),
        _family(STATE, states),
        _family(LAST_SYNC, last_sync),
        _family(LAST_SYNC_SUCCESS, last_sync_success),
        _family(LICENCE_EXPIRY, licence_expiry),
        _family(CREDENTIAL_EXPIRY, credential_expiry),
        _family(CREDENTIAL_DAYS_LEFT, credential_days_left),
        _family(CREDENTIAL_STATE, credential_state),
    ]
    return "".join(families).encode()
