"""Apple's devices stored a page at a time, with one raw-SQL upsert per page.

The statement is what bulk_create(update_conflicts=True) would write, without a model instance
per device; README's bench table has the full-sync timings it is held to (`make bench`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache

from django.db import connection, models

from dep_accounts.apple import schema as apple_schema
from dep_accounts.models import DEPAccount, DEPDevice

logger = logging.getLogger(__name__)

# What Apple says of a device, as DEPDevice stores it: text (never NULL) and times.
_TIME_FIELDS = ["profile_assign_time", "device_assigned_date", "op_date", "mdm_migration_deadline"]
_TEXT_FIELDS = ["model", "description", "color", "asset_tag", "os", "device_family"]
_TEXT_FIELDS += ["profile_status", "profile_uuid", "device_assigned_by"]
DEVICE_FIELDS = [*_TEXT_FIELDS, *_TIME_FIELDS]


_UPSERT_COLUMNS = [
    "account_id",
    "serial_number",
    *_TEXT_FIELDS,
    *_TIME_FIELDS,
    "removed_at",
    "updated_at",
    "default_profile_pending",
]
# Postgres array types of those columns, for the one-statement page upsert below.
_POSTGRES_TYPES = ["bigint", "varchar"] + ["varchar"] * len(_TEXT_FIELDS)
_POSTGRES_TYPES += ["timestamptz"] * (len(_TIME_FIELDS) + 2) + ["boolean"]


@cache
def _upsert_sql(vendor: str) -> str:
    """One page of devices inserted or updated by (account, serial): what bulk_create with
    update_conflicts writes, without building a model instance per device. Postgres takes the
    page as one statement over column arrays; SQLite, row by row in one executemany."""
    table = connection.ops.quote_name(DEPDevice._meta.db_table)
    if vendor == "postgresql":
        arrays = ", ".join(f"%s::{t}[]" for t in _POSTGRES_TYPES)
        rows = f"SELECT * FROM unnest({arrays})"  # noqa: S608 (fixed type names only)
    else:
        rows = f"VALUES ({', '.join(['%s'] * len(_UPSERT_COLUMNS))})"
    kept = ("account_id", "serial_number", "default_profile_pending")
    updated = [c for c in _UPSERT_COLUMNS if c not in kept]
    # Built from the model's own table and column names only; the values go as parameters.
    return (
        f"INSERT INTO {table} ({', '.join(_UPSERT_COLUMNS)}) {rows} "
        "ON CONFLICT (account_id, serial_number) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in updated)
    )


def _rows_upsert(rows: list[tuple]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                _upsert_sql(connection.vendor), [list(c) for c in zip(*rows, strict=True)]
            )
        else:
            cursor.executemany(_upsert_sql(connection.vendor), rows)


def _device_rows(
    account: DEPAccount, devices: list[apple_schema.Device], now: datetime
) -> list[tuple]:
    adapt = connection.ops.adapt_datetimefield_value
    updated_at = adapt(now)
    return [
        (
            account.pk,
            device.serial_number,
            *(getattr(device, name) or "" for name in _TEXT_FIELDS),
            *(adapt(getattr(device, name)) for name in _TIME_FIELDS),
            None,
            updated_at,
            False,
        )
        for device in devices
    ]


def _max_length(name: str) -> int:
    field = DEPDevice._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length is not None
    return field.max_length


@cache
def _column_lengths() -> dict[str, int]:
    return {name: _max_length(name) for name in _TEXT_FIELDS}


SERIAL_LENGTH = _max_length("serial_number")


def _fitted(device: apple_schema.Device) -> apple_schema.Device:
    """Apple's strings cut to the portal's columns, a "…" marking the cut: one over-long model
    name must not fail a page (Postgres refuses it; SQLite would store it whole)."""
    cut = {
        name: value[: longest - 1] + "…"
        for name, longest in _column_lengths().items()
        if len(value := getattr(device, name)) > longest
    }
    return replace(device, **cut) if cut else device


def _latest_by_serial(devices: Iterable[apple_schema.Device]) -> list[apple_schema.Device]:
    """Apple may list a serial more than once in a page; the latest event wins."""
    latest: dict[str, apple_schema.Device] = {}
    floor = datetime.min.replace(tzinfo=UTC)
    for device in devices:
        seen = latest.get(device.serial_number)
        if seen is None or (device.op_date or floor) >= (seen.op_date or floor):
            latest[device.serial_number] = device
    return list(latest.values())


def devices_page_upsert(
    *, account: DEPAccount, devices: Sequence[apple_schema.Device], now: datetime
) -> tuple[list[str], int]:
    """Store one page of Apple's device list; return the serials new to the account and how
    many devices it removed. Runs inside the caller's transaction, with the page's cursor."""
    # A serial is the device's identity: one too long for its column is left out, never cut.
    fitting = [d for d in devices if len(d.serial_number) <= SERIAL_LENGTH]
    if len(fitting) < len(devices):
        logger.warning(
            "DEP account %s: %d device record(s) from Apple with a serial number longer than %d "
            "characters left out",
            account.pk,
            len(devices) - len(fitting),
            SERIAL_LENGTH,
        )
    devices = _latest_by_serial(fitting)
    deleted = [d.serial_number for d in devices if d.op_type == "deleted"]
    replaced = [d.serial_number for d in devices if d.released_by_replacement]
    present = [_fitted(d) for d in devices if d.op_type != "deleted"]
    known = set(
        DEPDevice.objects.filter(
            account=account,
            serial_number__in=[d.serial_number for d in present],
            removed_at__isnull=True,
        ).values_list("serial_number", flat=True)
    )
    if present:
        _rows_upsert(_device_rows(account, present, now))
    new = [d.serial_number for d in present if d.serial_number not in known]
    if new and account.assign_default_profile and account.default_profile_id:
        # Marked with the page, so a failed or interrupted assignment is retried next sync.
        DEPDevice.objects.filter(account=account, serial_number__in=new).update(
            default_profile_pending=True
        )
    removed = 0
    if deleted:
        removed = DEPDevice.objects.filter(
            account=account, serial_number__in=deleted, removed_at__isnull=True
        ).update(removed_at=now, updated_at=now)
    if replaced:
        DEPDevice.objects.filter(account=account, serial_number__in=replaced).update(
            released_by_replacement=True
        )
    return new, removed
