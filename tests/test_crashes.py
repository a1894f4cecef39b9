"""A worker killed mid-sync (SIGKILL) and restarted ends with exactly Apple's device set.

The embedded topology, each part its own process: SQLite and Celery's filesystem broker under a
temporary var/, applesim with 20,000 devices, and a real Celery worker that the test kills.
applesim answers device pages slowly so that the kills land mid-sync. The test reads the
portal's SQLite database directly, as an operator with sqlite3 would.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from applesim.testing import SimControl
from tests.processes import (
    BASE_DIR,
    BIN,
    Processes,
    free_port,
    logs_on_failure,
    manage,
    portal_env,
    wait_until,
)

DEVICES = 20_000
LEASE_SECONDS = 5
SLOW_PAGE = {"action": "timeout", "seconds": 0.2}

# Runs in `manage.py shell` in the embedded topology: a licence and one DEP account whose token
# ABM issued for applesim's MDM server. Sync runs only when the test asks for it.
SEED = """
import json, os
from datetime import timedelta
from django.conf import settings
from django.utils import timezone
from applesim.testing import SimControl
from dep_accounts.services.licence import licence_document_issue, licence_install
from dep_accounts.services.accounts import account_create, account_update
from dep_accounts.services.intake import token_check, token_take
from dep_accounts.services.verdict import Intent

seed = json.loads(os.environ["CRASH_SEED"])
now = timezone.now()
licence_install(
    document=licence_document_issue(
        signing_key=settings.LICENCE_SIGNING_KEY,
        customer="Springfield Public Schools",
        plan="Education",
        device_limit=100_000,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    ),
    actor=None,
)
account = account_create(actor=None, display_name="Springfield district")
abm = SimControl(settings.DEP_API_URL)
abm.sign_in(seed["apple_id"], org_id=seed["org_id"])
abm.public_key_upload(seed["server_uuid"], account.key_pair.certificate_pem.encode())
check = token_check(account=account, token_file=abm.token_download(seed["server_uuid"]))
token_take(account=account, check=check, actor=None, file_name="smime.p7m", intent=Intent.ADD)
account_update(account=account, actor=None, auto_sync=False)
print(json.dumps({"account_id": account.pk}))
"""


def utc_now() -> datetime:
    """Now as the portal stores it in SQLite: UTC, without a time zone."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Embedded:
    """The embedded topology with one DEP account, and the means to sync and crash it."""

    env: dict[str, str]
    processes: Processes
    database: Path
    abm: SimControl
    server_uuid: str
    account_id: int

    def account(self) -> dict:
        with closing(sqlite3.connect(self.database, timeout=20)) as connection:
            connection.row_factory = sqlite3.Row
            row = connection.execute(
                "SELECT * FROM dep_accounts_depaccount WHERE id = ?", (self.account_id,)
            ).fetchone()
            return dict(row)

    def serials(self) -> list[str]:
        """The serials the portal holds as present (not removed), duplicates included."""
        with closing(sqlite3.connect(self.database, timeout=20)) as connection:
            rows = connection.execute(
                "SELECT serial_number FROM dep_accounts_depdevice "
                "WHERE account_id = ? AND removed_at IS NULL",
                (self.account_id,),
            )
            return [serial for (serial,) in rows]

    def removed(self) -> set[str]:
        with closing(sqlite3.connect(self.database, timeout=20)) as connection:
            rows = connection.execute(
                "SELECT serial_number FROM dep_accounts_depdevice "
                "WHERE account_id = ? AND removed_at IS NOT NULL",
                (self.account_id,),
            )
            return {serial for (serial,) in rows}

    def colors(self, serials: list[str]) -> set[str]:
        with closing(sqlite3.connect(self.database, timeout=20)) as connection:
            rows = connection.execute(
                "SELECT DISTINCT color FROM dep_accounts_depdevice WHERE account_id = ? "
                f"AND serial_number IN ({', '.join('?' * len(serials))})",
                (self.account_id, *serials),
            )
            return {color for (color,) in rows}

    def worker(self):
        return self.processes.worker("--pool", "solo", "--concurrency", "1")

    def lease_lapsed(self) -> bool:
        held = self.account()["sync_lock_until"]
        return held is None or datetime.fromisoformat(held) < utc_now()

    def sync_request(self) -> None:
        """What "Sync now" and the dispatcher do: queue the account's sync task."""
        subprocess.run(
            [
                str(BIN / "celery"),
                "-A",
                "mdmportal",
                "call",
                "dep_accounts.services.sync.account_sync",
                "--args",
                json.dumps([self.account_id]),
            ],
            env=self.env,
            cwd=BASE_DIR,
            capture_output=True,
            timeout=30,
            check=True,
        )

    def sync_until(self, done, *, what: str, timeout: float = 40):
        """Wait for the lease of any dead sync to lapse, queue a sync and wait until `done`."""
        wait_until(self.lease_lapsed, timeout=LEASE_SECONDS + 5, what="the dead sync's lease")
        self.sync_request()
        return wait_until(done, timeout=timeout, what=what, every=0.05)

    def sync_to_end(self) -> None:
        worker = self.worker()
        since = utc_now()
        outcome = self.sync_until(lambda: self.ended(since), what="the sync to end")
        worker.stop()
        assert outcome == "ok", self.account()["last_sync_message"]

    def ended(self, since: datetime) -> str:
        """The result of a sync that started after `since` and has ended, or ""."""
        account = self.account()
        started, ended = account["last_sync_started_at"], account["last_sync_at"]
        if started is None or ended is None or account["last_sync_result"] == "running":
            return ""
        if datetime.fromisoformat(started) < since or datetime.fromisoformat(ended) < since:
            return ""
        return account["last_sync_result"]

    def assert_exactly_apples_devices(self) -> None:
        serials = self.serials()
        assert len(serials) == len(set(serials)), "no serial is listed twice"
        apples = self.abm.device_serials(self.server_uuid)
        assert set(serials) == apples, (
            f"{len(apples - set(serials))} of Apple's devices missing, "
            f"{len(set(serials) - apples)} that Apple no longer has"
        )


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[Embedded]:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("embedded")
    var_dir = root / "var"
    applesim_port = free_port()
    applesim_url = f"http://127.0.0.1:{applesim_port}"
    env = portal_env(
        DEBUG="true",
        MDMPORTAL_VAR_DIR=str(var_dir),
        DEP_API_URL=applesim_url,
        DEP_SYNC_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    processes = Processes(root, env)
    try:
        with logs_on_failure(processes):
            processes.applesim(applesim_port, root / "applesim.sqlite3")
            manage(env, "migrate", "--noinput")
            abm = SimControl(applesim_url)
            apple_id = "it.admin@springfield.example"
            org_id = abm.organisation_create("Springfield Public Schools", apple_ids=[apple_id])
            server_uuid = abm.server_create(org_id, "Springfield MDM")
            abm.devices_add(server_uuid, DEVICES)
            seed = {"apple_id": apple_id, "org_id": org_id, "server_uuid": server_uuid}
            seeded = manage(env | {"CRASH_SEED": json.dumps(seed)}, "shell", "-c", SEED)
            account_id = json.loads(seeded.strip().splitlines()[-1])["account_id"]
        print(f"embedded topology up in {time.monotonic() - started:.1f} s")
        yield Embedded(
            env=env,
            processes=processes,
            database=var_dir / "mdmportal.sqlite3",
            abm=abm,
            server_uuid=server_uuid,
            account_id=account_id,
        )
    finally:
        processes.stop_all()


@pytest.fixture
def slow_apple(embedded) -> Iterator[SimControl]:
    """applesim taking a while over each page of devices, so that kills land mid-sync."""
    for endpoint in ("server_devices", "devices_sync"):
        embedded.abm.faults_set(endpoint, [SLOW_PAGE | {"count": 1000}])
    yield embedded.abm
    embedded.abm.faults_clear()


def test_worker_killed_during_full_fetch_resumes_to_apples_device_set(embedded, slow_apple):
    with logs_on_failure(embedded.processes):
        # Killed after 2 pages, half-way and one page from the end of 20 pages of 1,000.
        for at_least in (2_000, 10_000, 19_000):
            worker = embedded.worker()
            embedded.sync_until(
                lambda at_least=at_least: len(embedded.serials()) >= at_least,
                what=f"{at_least} devices saved",
            )
            worker.kill()
            print(f"worker killed with {len(embedded.serials())} of {DEVICES} devices saved")
            account = embedded.account()
            assert account["last_sync_result"] == "running", "the kill landed mid-sync"
            assert account["sync_phase"] == "fetch"
            serials = embedded.serials()
            assert len(serials) == len(set(serials)) < DEVICES

        embedded.sync_to_end()
        embedded.assert_exactly_apples_devices()
        assert len(embedded.serials()) == DEVICES


def test_worker_killed_during_incremental_sync_resumes_to_apples_device_set(embedded, slow_apple):
    with logs_on_failure(embedded.processes):
        if embedded.account()["sync_phase"] != "sync":
            embedded.sync_to_end()
        held = sorted(embedded.serials())
        slow_apple.devices_delete(held[:500])
        slow_apple.devices_modify(held[500:700], color="RED")
        slow_apple.devices_add(embedded.server_uuid, 3_000)
        cursor = embedded.account()["sync_cursor"]

        worker = embedded.worker()
        embedded.sync_until(
            lambda: embedded.account()["sync_cursor"] != cursor, what="a page of changes saved"
        )
        worker.kill()
        assert embedded.account()["last_sync_result"] == "running", "the kill landed mid-sync"

        embedded.sync_to_end()
        embedded.assert_exactly_apples_devices()
        assert set(held[:500]) <= embedded.removed()
        assert embedded.colors(held[500:700]) == {"RED"}


def test_pool_process_killed_mid_sync_is_redelivered_and_ends_with_apples_device_set(
    embedded, slow_apple
):
    # The embedded default runs a prefork pool: when the kernel kills a pool process, the task
    # goes back to the queue (acks_late, reject_on_worker_lost) and resumes once the lease lapses.
    with logs_on_failure(embedded.processes):
        if embedded.account()["sync_phase"] != "sync":
            embedded.sync_to_end()
        slow_apple.devices_add(embedded.server_uuid, 5_000)
        cursor = embedded.account()["sync_cursor"]

        worker = embedded.processes.worker("--concurrency", "1")
        embedded.sync_until(
            lambda: embedded.account()["sync_cursor"] != cursor, what="a page of changes saved"
        )
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
        [pool_process] = children.read_text().split()
        os.kill(int(pool_process), signal.SIGKILL)
        killed = utc_now()
        assert embedded.account()["last_sync_result"] == "running", "the kill landed mid-sync"

        outcome = wait_until(
            lambda: embedded.ended(killed), timeout=40, what="the redelivered sync to end"
        )
        assert outcome == "ok", embedded.account()["last_sync_message"]
        assert "WorkerLostError" in worker.log()
        embedded.assert_exactly_apples_devices()
        worker.stop()
