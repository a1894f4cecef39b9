"""Reads that several places share: the banner, the DEP accounts list, the licence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db.models import F, Q, QuerySet, Sum

from dep_accounts.models import (
    AuditEvent,
    Banner,
    DEPAccount,
    DEPDevice,
    OutboundEmail,
    SubscriptionLicence,
)
from dep_accounts.users import User

State = DEPAccount.State


def email_problem(*, now: datetime) -> str:
    """Why a notification email of the last week was not delivered, until its recipient gets
    a later one."""
    Status = OutboundEmail.Status
    notifications = OutboundEmail.objects.exclude(kind=OutboundEmail.Kind.TEST)
    failed = (
        notifications.filter(
            status__in=[Status.FAILED, Status.UNCERTAIN],
            created_at__gte=now - timedelta(days=settings.DEP_TOKEN_CRITICAL_DAYS),
        )
        .order_by("-created_at")
        .values_list("created_at", "recipient", "last_answer")
        .first()
    )
    if failed is None:
        return ""
    failed_at, recipient, answer = failed
    later = notifications.filter(status=Status.SENT, recipient=recipient, created_at__gt=failed_at)
    return "" if later.exists() else answer


def banner_items() -> list[dict[str, str]]:
    """The stored banner, in one query."""
    items = Banner.objects.filter(pk=1).values_list("items", flat=True).first()
    return items or []


def dep_accounts_list() -> QuerySet[DEPAccount]:
    """DEP accounts, soonest expiry first; no per-row queries."""
    return DEPAccount.objects.order_by(F("token_expires_at").asc(nulls_last=True), "id")


def device_total() -> int:
    """Devices in use over all accounts, from the counts the sync keeps: no COUNT(*) of devices."""
    return DEPAccount.objects.aggregate(total=Sum("device_count"))["total"] or 0


def audit_events(
    *,
    account_id: int | None = None,
    account_name: str = "",
    action: str = "",
    since: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The audit log, newest first, filtered as the Audit Log page and the API ask."""
    events = AuditEvent.objects.select_related("account").order_by("-at", "-id")
    if account_id is not None:
        events = events.filter(account_id=account_id)
    if account_name:
        events = events.filter(account__in=accounts_named(account_name))
    if action:
        events = events.filter(action=action)
    if since is not None:
        events = events.filter(at__gte=since)
    return events


def licence_current() -> SubscriptionLicence | None:
    return SubscriptionLicence.objects.filter(is_current=True).first()


@dataclass(frozen=True)
class TokenCustodian:
    """An Apple ID and the tokens it downloaded in ABM, one after the other."""

    apple_id: str
    token_count: int
    first_uploaded_at: datetime
    last_uploaded_at: datetime
    # Who uploaded the first of these tokens: the one that changed the Apple ID, if any.
    uploaded_by: str
    changed_from: str
    change_confirmed: bool
    is_current: bool


class CustodiedUpload(Protocol):
    """What the custodian history reads of an upload: a server token's or a push certificate's."""

    @property
    def pk(self) -> int: ...

    @property
    def admin_apple_id(self) -> str: ...

    @property
    def uploaded_at(self) -> datetime: ...

    @property
    def uploaded_by(self) -> User | None: ...

    @property
    def apple_id_change_confirmed(self) -> bool: ...

    @property
    def is_current(self) -> bool: ...


def token_custodians(server_tokens: Iterable[CustodiedUpload]) -> list[TokenCustodian]:
    """Who downloaded the tokens, in upload order: one entry per run of the same Apple ID,
    with each change of Apple ID marked."""
    runs: list[list[CustodiedUpload]] = []
    for token in sorted(server_tokens, key=lambda t: (t.uploaded_at, t.pk)):
        if runs and runs[-1][0].admin_apple_id == token.admin_apple_id:
            runs[-1].append(token)
        else:
            runs.append([token])
    custodians = []
    previous = ""
    for run in runs:
        first = run[0]
        changed = bool(previous and first.admin_apple_id and first.admin_apple_id != previous)
        custodians.append(
            TokenCustodian(
                apple_id=first.admin_apple_id,
                token_count=len(run),
                first_uploaded_at=first.uploaded_at,
                last_uploaded_at=run[-1].uploaded_at,
                uploaded_by=first.uploaded_by.get_username() if first.uploaded_by else "",
                changed_from=previous if changed else "",
                change_confirmed=changed and first.apple_id_change_confirmed,
                is_current=any(token.is_current for token in run),
            )
        )
        previous = first.admin_apple_id or previous
    return custodians


def accounts_named(text: str) -> QuerySet[DEPAccount, int]:
    """The pks of the DEP accounts whose name (the admin's or Apple's MDM server name) contains
    `text`, for an `account__in` filter."""
    text = text.strip()
    return DEPAccount.objects.filter(
        Q(display_name__icontains=text) | Q(server_name__icontains=text)
    ).values_list("pk", flat=True)


def licence_devices_stored() -> int:
    """The devices the licence counts: every device of every DEP account not removed."""
    return DEPDevice.objects.filter(removed_at__isnull=True).count()
