"""The APNs push certificate as a kind of Apple credential: its rows and banner line come from
`services.push.expiry`, and it sends its reminders itself (`push.reminders`, hourly)."""

from __future__ import annotations

from datetime import datetime

from dep_accounts.services.credentials.base import (
    CRITICAL,
    EXPIRED,
    WARNING,
    BannerProblem,
    CredentialRow,
)
from dep_accounts.services.push import expiry as push_expiry


def apns_rows(now: datetime) -> list[CredentialRow]:
    return [CredentialRow(**vars(row)) for row in push_expiry.apns_credential_rows()]


_APNS_RANKS: dict[str, int] = {
    push_expiry.State.EXPIRED: EXPIRED,
    push_expiry.State.CRITICAL: CRITICAL,
    push_expiry.State.WARNING: WARNING,
}


def apns_banner_problems(now: datetime) -> tuple[list[BannerProblem], int]:
    items = push_expiry.apns_banner_items(now=now)
    push = push_expiry.push_certificate_issued() if items else None
    if push is None:
        return [], 0
    state, _detail = push_expiry.push_state_for(expires_at=push.expires_at, now=now)
    return [BannerProblem(_APNS_RANKS[state], push.expires_at, item) for item in items], len(items)
