"""Scenarios 1 and 2: a full device sync from applesim, then incremental syncs.

Three ways of taking the same pages from applesim over real HTTP, with the same DEPClient:
ours (`devices_sync`), the floor (one raw executemany INSERT per page into the empty table,
a transaction per page as ours has) and the naive way (one `update_or_create` per device, a
transaction per page). Ours and the floor alternate, so drift on the machine hits both.
"""

from __future__ import annotations

import functools
import gc
import random
import time

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
from dep_accounts.apple.client import DEPClient
from dep_accounts.models import DEPAccount, DEPDevice
from dep_accounts.services.sync import PAGE_LIMIT, devices_sync
from dep_accounts.services.tokens import dep_client_for_token, server_token_credentials

Phase = DEPAccount.SyncPhase


def _client(account: DEPAccount) -> DEPClient:
    current = account.server_tokens.get(is_current=True)
    return dep_client_for_token(server_token_credentials(current))


def _devices_clear(account: DEPAccount) -> None:
    """Back to an account that never synced, with an empty device table."""
    table = DEPDevice._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {table}")
        else:
            cursor.execute(f"DELETE FROM {table}")
    DEPAccount.objects.filter(pk=account.pk).update(
        sync_phase=Phase.FETCH,
        sync_cursor="",
        sync_cursor_at=None,
        sync_fetch_started_at=None,
        sync_lock_until=None,
        sync_retry_at=None,
        device_count=0,
    )
    account.refresh_from_db()


def ours_run(account: DEPAccount) -> int:
    outcome = devices_sync(account=account)
    if outcome.result != DEPAccount.SyncResult.OK:
        raise RuntimeError(f"devices_sync failed: {outcome.message}")
    return outcome.devices_seen


def floor_run(account: DEPAccount) -> int:
    """Fetch every page and INSERT its rows with one executemany: nothing less would do."""
    client = _client(account)
    now = timezone.now()
    cursor, saved = None, 0
    while True:
        page = client.devices_fetch(cursor=cursor, limit=PAGE_LIMIT)
        data.device_rows_insert([data.device_row(account.pk, d, now) for d in page.devices])
        saved += len(page.devices)
        if not page.more_to_follow:
            return saved
        cursor = page.cursor


def naive_run(account: DEPAccount, *, limit: int) -> int:
    """One update_or_create per device, for the first `limit` devices."""
    client = _client(account)
    now = timezone.now()
    cursor, saved = None, 0
    while saved < limit:
        page = client.devices_fetch(cursor=cursor, limit=PAGE_LIMIT)
        with transaction.atomic():
            for device in page.devices[: limit - saved]:
                DEPDevice.objects.update_or_create(
                    account=account,
                    serial_number=device.serial_number,
                    defaults={**data.device_values(device), "removed_at": None, "updated_at": now},
                )
                saved += 1
        if not page.more_to_follow:
            break
        cursor = page.cursor
    return saved


def _check_count(expected: int, what: str) -> None:
    found = DEPDevice.objects.count()
    if found != expected:
        raise RuntimeError(f"{what} left {found} devices, not {expected}.")


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
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

        _devices_clear(account)
        gc.collect()
        naive_seconds, _ = timed(lambda: naive_run(account, limit=size.naive_devices))
        _check_count(size.naive_devices, "The naive sync")
        naive_scaled = naive_seconds * size.devices / size.naive_devices

        ours: list[float] = []
        floor: list[float] = []
        ours_growth: list[float] = []
        cpu: dict[str, list[float]] = {"ours": [], "floor": []}
        for repeat in range(size.sync_repeats):
            # floor, ours / ours, floor / floor, ours: with an odd number of repeats the last
            # run is ours, and scenario 2 starts from it.
            order = ("ours", "floor") if repeat % 2 else ("floor", "ours")
            for way in order:
                _devices_clear(account)
                # memory_growth() collects garbage first: earlier garbage is not billed.
                with memory_growth() as growth:
                    run = ours_run if way == "ours" else floor_run
                    cpu_start = time.process_time()
                    seconds, seen = timed(functools.partial(run, account))
                    cpu[way].append(time.process_time() - cpu_start)
                if seen != size.devices:
                    raise RuntimeError(f"The {way} sync saw {seen} devices, not {size.devices}.")
                _check_count(size.devices, f"The {way} sync")
                (ours if way == "ours" else floor).append(seconds)
                if way == "ours":
                    ours_growth.append(growth.growth_mb)
        full = median(ours)

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
            profiled(f"sync-full-{database}", lambda: ours_run(account))
            _devices_clear(account)
            profiled(f"sync-floor-{database}", lambda: floor_run(account))
    finally:
        sim.stop()

    floor_median, incremental_median = median(floor), median(incremental)
    heap_mb = heap.peak_mb
    subset = (
        f"naive {s(naive_scaled)} (measured on {size.naive_devices:,}, scaled x"
        f"{size.devices // size.naive_devices})"
        if size.naive_devices < size.devices
        else f"naive {s(naive_scaled)}"
    )
    facts = {
        "devices": size.devices,
        "ours_seconds": ours,
        "floor_seconds": floor,
        # This process's CPU time (applesim's thread and SQLite included, Postgres not):
        # less disturbed than wall time when other work shares the machine.
        "ours_cpu_seconds": cpu["ours"],
        "floor_cpu_seconds": cpu["floor"],
        "naive_seconds": naive_seconds,
        "naive_devices": size.naive_devices,
        "naive_scaled_seconds": naive_scaled,
        "ours_python_peak_mb": heap_mb,
        "ours_rss_growth_mb": ours_growth,
        "incremental_seconds": incremental,
        "changed_devices": size.changed_devices,
    }
    memory = f"{heap_mb:.1f} MB (tracemalloc)"
    name = f"1. Full sync, {size.devices:,} devices, {label}"
    return [
        Row(
            key=f"sync.floor.{database}",
            scenario=f"{name}: vs the floor",
            measured=s(full),
            baseline=f"floor {s(floor_median)} (executemany per page)",
            ratio=ratio_text(full / floor_median),
            target="<= 1.5x the floor",
            met=full <= 1.5 * floor_median,
            peak_memory=memory,
            facts=facts,
        ),
        Row(
            key=f"sync.naive.{database}",
            scenario=f"{name}: vs naive",
            measured=s(full),
            baseline=subset,
            ratio=f"{naive_scaled / full:.1f}x faster",
            target=">= 10x faster",
            met=naive_scaled >= 10 * full,
            peak_memory=memory,
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
            baseline=f"full sync {s(full)}",
            ratio=f"{incremental_median / full:.1%}",
            target="< 5% of the full sync",
            met=incremental_median < 0.05 * full,
        ),
    ]
