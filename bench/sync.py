"""Scenarios 1 and 2: a full device sync of 100,000 devices, then incremental syncs.

The database part is measured alone: applesim's pages are fetched once over HTTP, kept in
memory, and replayed, so that the fetch (the same in every arm) does not hide the difference.
Against it, in the same run:

- the floor: on Postgres, COPY into a staging table plus one INSERT ... ON CONFLICT per page;
  on SQLite, one transaction with one executemany for every device. Its rows are built before
  the clock starts, so it is a floor;
- the naive Django code: `bulk_create(update_conflicts=True)` per page, in full.

Ours and the floor alternate, so drift on the machine hits both. The end-to-end sync over real
HTTP (`devices_sync`, the token decrypted, every page fetched from applesim) is reported
separately, against the fetch alone plus the database part.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from applesim.testing import sim_start
from bench import data
from bench.measure import (
    DATABASE_LABELS,
    Row,
    median,
    memory_growth,
    profiled,
    profiling,
    python_peak,
    ratio_text,
    s,
    timed,
)
from bench.sizes import Size
from dep_accounts.apple import schema as apple_schema
from dep_accounts.apple.client import DEPClient
from dep_accounts.models import DEPAccount, DEPDevice
from dep_accounts.services.apple_access import dep_client_for_token, server_token_credentials
from dep_accounts.services.device_upsert import DEVICE_FIELDS
from dep_accounts.services.sync import devices_sync
from dep_accounts.services.sync_pages import PAGE_LIMIT, fetch_finish, fetch_restart, page_save

Phase = DEPAccount.SyncPhase
TABLE = DEPDevice._meta.db_table
STAGING = "bench_device_staging"
# The columns the product's upsert writes, in its order.
COLUMNS = ["account_id", "serial_number", *DEVICE_FIELDS, "removed_at", "updated_at"]
COLUMNS.append("default_profile_pending")
UPDATED = [
    c for c in COLUMNS if c not in ("account_id", "serial_number", "default_profile_pending")
]
ON_CONFLICT = "ON CONFLICT (account_id, serial_number) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in UPDATED
)


def _client(account: DEPAccount) -> DEPClient:
    current = account.server_tokens.get(is_current=True)
    return dep_client_for_token(server_token_credentials(current))


def _devices_clear(account: DEPAccount) -> None:
    """Back to an account that never synced, with an empty device table."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {TABLE}")
        else:
            cursor.execute(f"DELETE FROM {TABLE}")
    DEPAccount.objects.filter(pk=account.pk).update(
        sync_phase=Phase.FETCH,
        sync_cursor="",
        sync_cursor_at=None,
        sync_fetch_started_at=None,
        sync_lock_until=None,
        sync_retry_at=None,
        sync_devices_seen=0,
        device_count=0,
    )
    account.refresh_from_db()


def pages_fetch(account: DEPAccount) -> list[apple_schema.DevicePage]:
    """Every page of a full fetch from applesim, as the client parses them."""
    client = _client(account)
    pages, cursor = [], None
    while True:
        page = client.devices_fetch(cursor=cursor, limit=PAGE_LIMIT)
        pages.append(page)
        if not page.more_to_follow:
            return pages
        cursor = page.cursor


def ours_database(account: DEPAccount, pages: list[apple_schema.DevicePage]) -> int:
    """What devices_sync does with the pages of a full fetch: each page and its cursor saved
    in a transaction, then the devices Apple no longer lists marked removed."""
    now = timezone.now()
    fetch_restart(account, now)
    for page in pages:
        page_save(account=account, page=page, phase=Phase.FETCH, now=now)
    fetch_finish(account, now)
    return sum(len(page.devices) for page in pages)


def floor_rows(
    account: DEPAccount, pages: list[apple_schema.DevicePage], now: datetime
) -> list[list[tuple]]:
    """The floor's rows, page by page, as the database driver takes them."""
    adapt = connection.ops.adapt_datetimefield_value
    times = {"profile_assign_time", "device_assigned_date", "op_date", "removed_at", "updated_at"}
    rows = []
    for page in pages:
        rows.append(
            [
                tuple(
                    adapt(value) if column in times else value
                    for column, value in data.device_upsert_values(account.pk, device, now).items()
                )
                for device in page.devices
            ]
        )
    return rows


def staging_create() -> None:
    """A temporary table of the upsert's columns, emptied at every commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WITH NO DATA"
        )


def floor_postgres(pages: list[list[tuple]]) -> int:
    """Per page: COPY into the staging table, one INSERT ... ON CONFLICT from it, commit."""
    columns = ", ".join(COLUMNS)
    insert = f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {STAGING} {ON_CONFLICT}"
    for rows in pages:
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {STAGING} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(insert)
    return sum(len(rows) for rows in pages)


def floor_sqlite(pages: list[list[tuple]]) -> int:
    """One transaction, one executemany of the same upsert over every device."""
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({placeholders}) {ON_CONFLICT}"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, [row for rows in pages for row in rows])
    return sum(len(rows) for rows in pages)


def naive_run(account: DEPAccount, pages: list[apple_schema.DevicePage]) -> int:
    """The obvious Django code: bulk_create(update_conflicts=True) per page, in a transaction."""
    now = timezone.now()
    for page in pages:
        with transaction.atomic():
            DEPDevice.objects.bulk_create(
                [
                    DEPDevice(**data.device_upsert_values(account.pk, device, now))
                    for device in page.devices
                ],
                update_conflicts=True,
                unique_fields=["account", "serial_number"],
                update_fields=[*DEVICE_FIELDS, "removed_at", "updated_at"],
            )
    return sum(len(page.devices) for page in pages)


def ours_run(account: DEPAccount) -> int:
    """The product end to end: the token decrypted, every page fetched over HTTP and saved."""
    outcome = devices_sync(account=account)
    if outcome.result != DEPAccount.SyncResult.OK:
        raise RuntimeError(f"devices_sync failed: {outcome.message}")
    return outcome.devices_seen


def _check_count(expected: int, what: str) -> None:
    found = DEPDevice.objects.count()
    if found != expected:
        raise RuntimeError(f"{what} left {found} devices, not {expected}.")


def _cleared_run(account: DEPAccount, expected: int, what: str, run: Callable[[], int]) -> tuple:
    """Seconds, CPU seconds and RSS growth of `run` from an empty device table."""
    _devices_clear(account)
    with memory_growth() as growth:
        cpu_start = time.process_time()
        seconds, seen = timed(run)
        cpu = time.process_time() - cpu_start
    if seen != expected:
        raise RuntimeError(f"{what} saw {seen} devices, not {expected}.")
    _check_count(expected, what)
    return seconds, cpu, growth.growth_mb


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    floor = floor_postgres if database == "postgres" else floor_sqlite
    floor_name = (
        "COPY + INSERT ... ON CONFLICT per page"
        if database == "postgres"
        else "one transaction, one executemany"
    )
    sim = sim_start()
    try:
        settings.DEP_API_URL = sim.url
        data.licence_create()
        account, server_uuid = data.sim_account_create(sim.control)
        serials = sim.control.devices_add(server_uuid, size.devices)

        # Warm-up, untimed: the first sync grows the database file and measures memory.
        with python_peak() as heap:
            ours_run(account)
        _check_count(size.devices, "The first sync")

        fetch_seconds, pages = timed(lambda: pages_fetch(account))
        rows = floor_rows(account, pages, timezone.now())
        if database == "postgres":
            staging_create()

        ours: list[float] = []
        floors: list[float] = []
        ours_growth = []
        cpu: dict[str, list[float]] = {"ours": [], "floor": []}
        for repeat in range(size.sync_repeats):
            for way in ("ours", "floor") if repeat % 2 else ("floor", "ours"):
                run = (lambda: ours_database(account, pages)) if way == "ours" else (
                    lambda: floor(rows)
                )  # fmt: skip
                seconds, cpu_seconds, growth = _cleared_run(
                    account, size.devices, f"The {way} database part", run
                )
                cpu[way].append(cpu_seconds)
                (ours if way == "ours" else floors).append(seconds)
                if way == "ours":
                    ours_growth.append(growth)
        naive_seconds, _, _ = _cleared_run(
            account, size.devices, "The naive sync", lambda: naive_run(account, pages)
        )

        # End to end over HTTP, from an account that never synced.
        end_to_end, _, _ = _cleared_run(
            account, size.devices, "The HTTP sync", lambda: ours_run(account)
        )

        incremental = []
        picker = random.Random(5)
        for repeat in range(size.incremental_repeats):
            changed = picker.sample(serials, size.changed_devices)
            sim.control.devices_modify(changed, asset_tag=f"BENCH-{repeat}")
            account.refresh_from_db()
            gc.collect()
            seconds, seen = timed(lambda: ours_run(account))
            if seen != size.changed_devices:
                raise RuntimeError(f"The incremental sync saw {seen} devices.")
            incremental.append(seconds)
        if DEPDevice.objects.filter(asset_tag__startswith="BENCH-").count() < len(changed):
            raise RuntimeError("The incremental syncs did not save the changed devices.")

        if profiling():
            _devices_clear(account)
            profiled(f"sync-database-{database}", lambda: ours_database(account, pages))
            _devices_clear(account)
            profiled(f"sync-floor-{database}", lambda: floor(rows))
    finally:
        sim.stop()

    full, floor_median, incremental_median = median(ours), median(floors), median(incremental)
    heap_mb = heap.peak_mb
    facts = {
        "devices": size.devices,
        "ours_seconds": ours,
        "floor_seconds": floors,
        # This process's CPU time (applesim's thread and SQLite included, Postgres not):
        # less disturbed than wall time when other work shares the machine.
        "ours_cpu_seconds": cpu["ours"],
        "floor_cpu_seconds": cpu["floor"],
        "naive_seconds": naive_seconds,
        "fetch_seconds": fetch_seconds,
        "end_to_end_seconds": end_to_end,
        "ours_python_peak_mb": heap_mb,
        "ours_rss_growth_mb": ours_growth,
        "incremental_seconds": incremental,
        "changed_devices": size.changed_devices,
    }
    memory = f"{heap_mb:.1f} MB (tracemalloc)"
    name = f"1. Full sync, {size.devices:,} devices, {label}"
    parts = fetch_seconds + full
    return [
        Row(
            key=f"sync.floor.{database}",
            scenario=f"{name}, database part: vs the floor",
            measured=s(full),
            baseline=f"floor {s(floor_median)} ({floor_name})",
            ratio=ratio_text(full / floor_median),
            target="<= 1.3x the floor",
            met=full <= 1.3 * floor_median,
            peak_memory=memory,
            facts=facts,
        ),
        Row(
            key=f"sync.naive.{database}",
            scenario=f"{name}, database part: vs bulk_create",
            measured=s(full),
            baseline=f"bulk_create(update_conflicts=True) per page {s(naive_seconds)}",
            ratio=f"{naive_seconds / full:.1f}x faster",
            target=">= 2x faster",
            met=naive_seconds >= 2 * full,
            peak_memory=memory,
        ),
        Row(
            key=f"sync.http.{database}",
            scenario=f"{name}, end to end over HTTP",
            measured=s(end_to_end),
            baseline=f"fetch alone {s(fetch_seconds)} + database part {s(full)}",
            ratio=ratio_text(end_to_end / parts),
            target="<= 1.2x the two parts",
            met=end_to_end <= 1.2 * parts,
        ),
        Row(
            key=f"sync.memory.{database}",
            scenario=f"{name}: memory growth",
            measured=memory,
            baseline="",
            ratio="",
            target="< 100 MB",
            met=heap_mb < 100,
            peak_memory=f"RSS +{max(ours_growth):.1f} MB (timed runs)",
        ),
        Row(
            key=f"sync.incremental.{database}",
            scenario=f"2. Incremental sync, {size.changed_devices:,} changed of "
            f"{size.devices:,}, {label}",
            measured=s(incremental_median),
            baseline=f"full sync {s(end_to_end)}",
            ratio=f"{incremental_median / end_to_end:.1%}",
            target="< 5% of the full sync",
            met=incremental_median < 0.05 * end_to_end,
        ),
    ]
