"""Scenario 11: scale-out, every account's full sync by Celery workers over the Redis broker.

Accounts of their own in applesim, each with its devices, are all due when the workers start;
each worker dispatches at its start (as in production), so two workers starting together is
part of the run. Three runs, the same data reset between them: one worker process; one worker
with two processes; two workers with node names of two hosts (w1@host-a, w2@host-b), one
process each. The time is from the first sync's start to the last one's end, as the database
records them, so the workers' boot is left out. Every account must be synced exactly once:
one successful sync in its audit log per run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from django.conf import settings
from django.db.models import Count, Max, Min

from applesim.testing import sim_start
from bench import data
from bench.measure import Row, ratio_text, s
from bench.sizes import Size
from dep_accounts.models import AuditEvent, DEPAccount, DEPDevice
from tests.processes import free_port, wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
Result = DEPAccount.SyncResult


@dataclass(frozen=True)
class Layout:
    key: str
    title: str
    # (node name, processes) of each worker.
    workers: tuple[tuple[str, int], ...]


LAYOUTS = (
    Layout("one", "1 worker process", (("w1@host-a", 1),)),
    Layout("processes", "2 worker processes", (("w1@host-a", 2),)),
    Layout("hosts", "2 workers on 2 hosts", (("w1@host-a", 1), ("w2@host-b", 1))),
)


def _redis_start(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until(
        lambda: redis.Redis(port=port, socket_connect_timeout=1).ping(),
        timeout=10,
        what=f"Redis on port {port}",
    )
    return server


def _accounts_reset(broker_url: str) -> None:
    """Every account due, with no device and no sync yet; the broker empty."""
    redis.Redis.from_url(broker_url).flushall()
    DEPDevice.objects.all().delete()
    AuditEvent.objects.filter(action=AuditEvent.Action.SYNC).delete()
    DEPAccount.objects.update(
        sync_phase=DEPAccount.SyncPhase.FETCH,
        sync_cursor="",
        sync_fetch_started_at=None,
        sync_lock_until=None,
        sync_queued_until=None,
        sync_retry_at=None,
        sync_failures=0,
        last_sync_started_at=None,
        last_sync_at=None,
        last_sync_result=Result.NEVER,
        sync_devices_seen=0,
        device_count=0,
    )


def _workers_start(layout: Layout, env: dict[str, str], log: Path) -> list[subprocess.Popen]:
    workers = []
    for name, processes in layout.workers:
        command = [sys.executable, "-m", "celery", "-A", "mdmportal", "worker"]
        options = ["-n", name, "--concurrency", str(processes), "--loglevel", "warning"]
        with log.open("ab") as output:
            workers.append(
                subprocess.Popen(
                    [*command, *options],
                    cwd=BASE_DIR,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return workers


def _workers_stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def _run(layout: Layout, env: dict[str, str], accounts: int, timeout: float) -> dict:
    _accounts_reset(env["CELERY_BROKER_URL"])
    log = Path(settings.VAR_DIR) / f"celery-{layout.key}.log"
    workers = _workers_start(layout, env, log)
    # applesim serves every page from this process: its CPU time over the run.
    cpu_start = time.process_time()
    try:
        wait_until(
            lambda: DEPAccount.objects.filter(last_sync_at__isnull=False).count() == accounts,
            timeout=timeout,
            what=f"every account synced by {layout.title}",
            every=0.5,
        )
        # Any second sync queued for an account would run now, while the workers still run.
        time.sleep(2)
        applesim_cpu = time.process_time() - cpu_start
    finally:
        _workers_stop(workers)
    span = DEPAccount.objects.aggregate(first=Min("last_sync_started_at"), last=Max("last_sync_at"))
    syncs = AuditEvent.objects.filter(
        action=AuditEvent.Action.SYNC, outcome=AuditEvent.Outcome.SUCCESS
    ).values("account_id")
    per_account = [row["syncs"] for row in syncs.annotate(syncs=Count("id"))]
    failed = DEPAccount.objects.exclude(last_sync_result=Result.OK).count()
    if failed:
        raise RuntimeError(f"{failed} syncs by {layout.title} did not succeed; see {log}.")
    return {
        "seconds": (span["last"] - span["first"]).total_seconds(),
        "syncs": sum(per_account),
        "accounts_synced_twice_or_more": sum(1 for count in per_account if count > 1),
        "devices": DEPDevice.objects.count(),
        "applesim_cpu_seconds": applesim_cpu,
    }


def scenario(size: Size, database: str) -> list[Row]:
    sim = sim_start()
    redis_port = free_port()
    broker = _redis_start(redis_port)
    try:
        broker_url = f"redis://127.0.0.1:{redis_port}/0"
        settings.DEP_API_URL = sim.url
        env = os.environ | {"CELERY_BROKER_URL": broker_url, "DEP_API_URL": sim.url}
        data.licence_create()
        org_id = sim.control.organisation_create(
            "Bench Schools", apple_ids=["it.admin@bench.example"]
        )
        for index in range(size.scaleout_accounts):
            _, server_uuid = data.sim_account_create(
                sim.control, org_id=org_id, name=f"Bench MDM {index:03d}"
            )
            sim.control.devices_add(server_uuid, size.scaleout_devices)
        runs = {
            layout.key: _run(layout, env, size.scaleout_accounts, size.child_timeout / 4)
            for layout in LAYOUTS
        }
    finally:
        os.killpg(broker.pid, signal.SIGTERM)
        broker.wait(timeout=10)
        sim.stop()

    expected = size.scaleout_accounts * size.scaleout_devices
    for key, run in runs.items():
        if run["devices"] != expected:
            raise RuntimeError(f"The {key} run left {run['devices']} devices, not {expected}.")
    one = runs["one"]
    rows = []
    for layout in LAYOUTS[1:]:
        run = runs[layout.key]
        gain = one["seconds"] / run["seconds"]
        once = run["syncs"] == size.scaleout_accounts and not run["accounts_synced_twice_or_more"]
        rows.append(
            Row(
                key=f"scaleout.{layout.key}.{database}",
                scenario=f"11. Scale-out, {size.scaleout_accounts} accounts x "
                f"{size.scaleout_devices} devices, {layout.title}, Redis, Postgres",
                measured=f"{s(run['seconds'])}, {run['syncs']} syncs",
                baseline=f"1 worker process {s(one['seconds'])}, {one['syncs']} syncs",
                ratio=ratio_text(gain),
                target=">= 1.5x faster, one sync per account",
                met=gain >= 1.5 and once,
                facts={"runs": runs, "accounts": size.scaleout_accounts, "gain": gain},
            )
        )
    return rows
