"""The data a scenario sets up in its own database: an admin, a licence, DEP accounts, devices.

Accounts and devices are written in bulk, straight into the tables: the scenarios measure
reading and syncing them, not creating them. Expiry dates are spread the way a fleet of yearly
tokens spreads them (about 9% expired or within 30 days of expiry), the same way at any count.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, models, transaction
from django.utils import timezone

from applesim.testing import SimControl
from bench.child import SIGNING_KEY_VARIABLE
from dep_accounts.apple import schema as apple_schema
from dep_accounts.apple.token import ServerTokenCredentials
from dep_accounts.encryption import secret_encrypt
from dep_accounts.models import DEPAccount, DEPDevice, ServerToken
from dep_accounts.roles import ADMINS
from dep_accounts.services.device_upsert import DEVICE_FIELDS
from dep_accounts.services.expiry import token_state_for
from dep_accounts.services.licence import licence_document_issue, licence_install
from dep_accounts.users import User

GOLDEN = 0.6180339887498949
MODELS = (
    ("iPad (10th generation)", "IPAD WI-FI 64GB SILVER", "iPad", "iPadOS", "DMP"),
    ("iPhone 15", "IPHONE 15 128GB BLACK", "iPhone", "iOS", "F2L"),
    (
        "MacBook Air (13-inch, M3, 2024)",
        "MBA 13.6 M3 8C CPU 16GB 512GB SILVER",
        "Mac",
        "OSX",
        "C02",
    ),
)


def admin_create() -> User:
    """A member of the admins group, as an admin signs in: not a superuser, whose permission
    checks would skip the queries every other user's requests send. Staff, so that the same
    user may open Django's own admin pages the list is compared with."""
    user = get_user_model().objects.create_user(
        "bench.admin", "bench@example.com", None, is_staff=True
    )
    user.groups.add(Group.objects.get(name=ADMINS))
    return user


def licence_create() -> None:
    """A licence valid for a year, signed with the development key (or the bench's own)."""
    now = timezone.now()
    document = licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY or os.environ[SIGNING_KEY_VARIABLE],
        customer="Bench Schools",
        plan="Education",
        device_limit=1_000_000,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
    licence_install(document=document, actor=None)


def token_expiry(index: int, now: datetime) -> datetime:
    """Spread over [-3, 362) days from now, evenly for any prefix of the indexes."""
    return now + timedelta(days=-3 + 365 * ((index * GOLDEN) % 1.0))


def accounts_create(*, count: int, first: int = 0, now: datetime | None = None) -> None:
    """`count` DEP accounts with tokens, numbered from `first`, as the list shows them."""
    now = now or timezone.now()
    accounts = []
    for index in range(first, first + count):
        expires_at = token_expiry(index, now)
        state, detail = token_state_for(expires_at=expires_at, now=now)
        organisation = index % 97
        accounts.append(
            DEPAccount(
                display_name=f"Campus {index}" if index % 3 == 0 else "",
                server_name=f"MDM server {index:05d}",
                server_uuid=uuid.UUID(int=index + 1).hex.upper(),
                org_name=f"Organisation {organisation}",
                org_id=str(1_000_000 + organisation),
                org_email=f"it@org{organisation}.example",
                org_type="edu",
                admin_apple_id=f"it.admin{index}@org{organisation}.example",
                state=state,
                state_detail=detail,
                token_expires_at=expires_at,
                last_sync_at=now - timedelta(minutes=index % 60),
                last_sync_result=DEPAccount.SyncResult.OK,
                last_sync_message="1000 device record(s) from Apple, 0 new.",
                device_count=(index * 37) % 5000,
            )
        )
    DEPAccount.objects.bulk_create(accounts, batch_size=500)


def statistics_refresh() -> None:
    """What autovacuum soon does after a bulk load or delete: plans as in steady operation."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def accounts_delete_from(first_pk: int) -> None:
    DEPAccount.objects.filter(pk__gte=first_pk).delete()


def sim_account_create(control: SimControl) -> tuple[DEPAccount, str]:
    """A DEP account whose current token is one applesim issued for a new MDM server."""
    org_id = control.organisation_create("Bench Schools", apple_ids=["it.admin@bench.example"])
    server_uuid = control.server_create(org_id, "Bench MDM")
    issued = control.token_credentials(server_uuid)
    credentials = ServerTokenCredentials.from_json(
        json.dumps({name: value for name, value in issued.items() if name != "filename"})
    )
    account = DEPAccount.objects.create(
        server_name="Bench MDM",
        server_uuid=server_uuid,
        org_name="Bench Schools",
        admin_apple_id="it.admin@bench.example",
        state=DEPAccount.State.OK,
        token_expires_at=credentials.access_token_expiry,
    )
    ServerToken.objects.create(
        account=account,
        secrets_encrypted=secret_encrypt(credentials.to_json().encode()),
        access_token_expiry=credentials.access_token_expiry,
        consumer_key_fingerprint=credentials.consumer_key_fingerprint,
        server_uuid=server_uuid,
        admin_apple_id="it.admin@bench.example",
    )
    return account, server_uuid


def device_values(device: apple_schema.Device) -> dict[str, object]:
    """The DEVICE_FIELDS of a device as the portal stores them: no NULL text."""
    datetimes = _device_table()[1]
    values = {name: getattr(device, name) for name in DEVICE_FIELDS}
    return {
        name: "" if value is None and name not in datetimes else value
        for name, value in values.items()
    }


@cache
def _device_table() -> tuple[list[str], frozenset[str], dict[str, Any]]:
    """Every column of a device row, the datetime ones, and the defaults of those Apple lacks."""
    fields = [field for field in DEPDevice._meta.concrete_fields if not field.primary_key]
    columns = [str(field.column) for field in fields]
    datetimes = frozenset(str(f.column) for f in fields if isinstance(f, models.DateTimeField))
    from_sync = {"account_id", "serial_number", *DEVICE_FIELDS, "removed_at", "updated_at"}
    defaults = {str(f.column): f.get_default() for f in fields if f.column not in from_sync}
    return columns, datetimes, defaults


def device_columns() -> list[str]:
    return _device_table()[0]


def device_upsert_values(
    account_id: int, device: apple_schema.Device, now: datetime
) -> dict[str, Any]:
    """The columns the product's page upsert writes for a device, in its order."""
    return {
        "account_id": account_id,
        "serial_number": device.serial_number,
        **device_values(device),
        "removed_at": None,
        "updated_at": now,
        "default_profile_pending": False,
    }


def device_row(account_id: int, device: apple_schema.Device, now: datetime) -> tuple:
    """A device as a raw INSERT of every column takes it, through the backend's adapters."""
    columns, datetimes, defaults = _device_table()
    values: dict[str, Any] = {
        **defaults,
        "account_id": account_id,
        "serial_number": device.serial_number,
        **device_values(device),
        "removed_at": None,
        "updated_at": now,
    }
    adapt = connection.ops.adapt_datetimefield_value
    return tuple(adapt(values[c]) if c in datetimes else values[c] for c in columns)


def device_rows_insert(rows: list[tuple]) -> None:
    """One executemany INSERT of `rows`, in a transaction of its own."""
    columns = device_columns()
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {DEPDevice._meta.db_table} ({', '.join(columns)}) VALUES ({placeholders})"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def devices_create(*, account: DEPAccount, count: int, first: int = 0) -> None:
    """`count` devices for `account`, numbered from `first`, written 5,000 at a time."""
    now = timezone.now()
    picker = random.Random(first)
    rows = []
    for index in range(first, first + count):
        model, description, family, os_name, prefix = MODELS[index % len(MODELS)]
        device = apple_schema.Device(
            serial_number=f"{prefix}{picker.randrange(36**6):06X}{index:07d}",
            model=model,
            description=description,
            os=os_name,
            device_family=family,
            profile_status="empty",
            device_assigned_date=now - timedelta(days=index % 700),
            device_assigned_by="reseller@apple.example.com",
        )
        rows.append(device_row(account.pk, device, now))
        if len(rows) == 5000:
            device_rows_insert(rows)
            rows = []
    if rows:
        device_rows_insert(rows)
    device_counts_refresh()


def devices_delete_from(first_pk: int) -> None:
    DEPDevice.objects.filter(pk__gte=first_pk).delete()
    device_counts_refresh()


def device_counts_refresh() -> None:
    """Each account's device count, as the sync keeps it."""
    for account in DEPAccount.objects.all():
        DEPAccount.objects.filter(pk=account.pk).update(
            device_count=DEPDevice.objects.filter(account=account, removed_at__isnull=True).count()
        )
