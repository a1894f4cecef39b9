"""`make run` as a new admin meets it: one clear line when it cannot start, nothing half-seeded,
and a console that ends with the URL, the demo's credentials and how to stop.

Each test runs the real commands in their own processes, with var/ in a temporary folder.
"""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.processes import (
    BASE_DIR,
    BIN,
    Processes,
    free_port,
    http_answers,
    logs_on_failure,
    manage,
    portal_env,
    wait_until,
)


@pytest.fixture
def var_dir(tmp_path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def env(var_dir) -> dict[str, str]:
    return portal_env(DEBUG="true", MDMPORTAL_VAR_DIR=str(var_dir))


@pytest.fixture
def processes(tmp_path, env) -> Iterator[Processes]:
    processes = Processes(tmp_path, env)
    with logs_on_failure(processes):
        yield processes
    processes.stop_all()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def users(var_dir: Path) -> list[str]:
    """The portal's user names, read as an operator would with sqlite3 (none: no database)."""
    database = var_dir / "mdmportal.sqlite3"
    if not database.exists():
        return []
    with closing(sqlite3.connect(database)) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        if "auth_user" not in tables:
            return []
        return [name for (name,) in connection.execute("SELECT username FROM auth_user")]


def dep_accounts(var_dir: Path) -> list[str]:
    with closing(sqlite3.connect(var_dir / "mdmportal.sqlite3")) as connection:
        rows = connection.execute("SELECT display_name FROM dep_accounts_depaccount")
        return [name for (name,) in rows]


def push_certificates(var_dir: Path) -> list[tuple[str, str, str]]:
    """(topic, Apple ID, expiry) of each push certificate, as sqlite3 shows them."""
    with closing(sqlite3.connect(var_dir / "mdmportal.sqlite3")) as connection:
        rows = connection.execute(
            "SELECT topic, apple_id, expires_at FROM dep_accounts_pushcertificate"
        )
        return list(rows)


def make_run(env: dict[str, str], port: int, applesim_port: int) -> subprocess.CompletedProcess:
    # -o: the virtualenv the tests run in counts as installed, whatever its time stamp.
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "run",
            f"BIN={BIN}",
            f"PORT={port}",
            f"APPLESIM_PORT={applesim_port}",
            f"MAIL_PORT={free_port()}",
        ],
        # As an admin types it, even when the tests themselves run under `make test`.
        env={k: v for k, v in env.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("taken", ["PORT", "APPLESIM_PORT"])
def test_a_busy_port_stops_make_run_with_one_line_and_nothing_seeded(
    env, var_dir, busy_port, taken
):
    ports = {"PORT": free_port(), "APPLESIM_PORT": free_port()} | {taken: busy_port}

    started = time.monotonic()
    completed = make_run(env, ports["PORT"], ports["APPLESIM_PORT"])

    # The one line besides make's own and the DEBUG warning every process gives at start.
    said = [
        line
        for line in completed.stderr.splitlines()
        if not line.startswith("make: ***") and "DEBUG IS ON" not in line
    ]
    name = "web" if taken == "PORT" else "applesim"
    assert completed.returncode != 0
    assert len(said) == 1, completed.stderr
    assert f"Port {busy_port} ({name}) is already in use" in said[0]
    assert "choose other ports: make run " in said[0]
    assert f"{taken}={busy_port}" not in said[0]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert time.monotonic() - started < 10
    assert users(var_dir) == []


def test_make_run_names_a_port_chosen_twice(env, var_dir):
    port = free_port()

    completed = make_run(env, port, port)

    assert f"Port {port} (web) is already in use" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert users(var_dir) == []


def test_applesim_that_dies_on_start_is_noticed_at_once(env, var_dir):
    # A folder where applesim's state file belongs: applesim cannot open it and exits.
    (var_dir / "applesim.sqlite3").mkdir(parents=True)

    started = time.monotonic()
    completed = make_run(env, free_port(), free_port())

    assert completed.returncode != 0
    assert "applesim stopped (exit code 1)" in completed.stderr
    assert "var/log/applesim.log" in completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    assert time.monotonic() - started < 15
    assert users(var_dir) == []


def test_a_seed_that_fails_half_way_keeps_nothing_and_the_next_start_seeds_it_all(
    env, var_dir, processes
):
    manage(env, "migrate", "--noinput")
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    failed = subprocess.run(
        [str(BIN / "python"), "manage.py", "seed_demo"],
        env=env | {"DEP_API_URL": nothing_listens},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode != 0
    # The one line besides the DEBUG warning every process gives at start.
    errors = [line for line in failed.stderr.splitlines() if "DEBUG IS ON" not in line]
    assert errors == [
        f"CommandError: The demo was not seeded (nothing was kept): applesim did not answer at "
        f"{nothing_listens} (Connection refused). Start it (python -m applesim) or set "
        "DEP_API_URL to where it runs."
    ]
    assert users(var_dir) == []
    assert not (var_dir / "demo-admin-password").exists()
    assert push_certificates(var_dir) == []

    applesim_port = free_port()
    processes.applesim(applesim_port, var_dir / "applesim.sqlite3")
    seeded = manage(env | {"DEP_API_URL": f"http://127.0.0.1:{applesim_port}"}, "seed_demo")

    password = (var_dir / "demo-admin-password").read_text()
    assert sorted(users(var_dir)) == ["admin", "viewer"]
    assert dep_accounts(var_dir) == ["Springfield district"]
    assert seeded.splitlines()[-1].startswith(f"Sign in as admin / {password} ")
    [(topic, apple_id, expires_at)] = push_certificates(var_dir)
    assert topic.startswith("com.apple.mgmt.External.")
    assert apple_id == "it.admin@springfield.example"
    days_left = datetime.fromisoformat(expires_at).replace(tzinfo=UTC) - datetime.now(UTC)
    assert 39 <= days_left.days <= 40
    # Seeding again adds nothing: the push certificate is there.
    manage(env | {"DEP_API_URL": f"http://127.0.0.1:{applesim_port}"}, "seed_demo")
    assert push_certificates(var_dir) == [(topic, apple_id, expires_at)]


def test_make_run_ends_with_the_url_the_credentials_and_how_to_stop(env, var_dir, processes):
    port, applesim_port = free_port(), free_port()
    command = [str(BIN / "python"), "manage.py", "run_embedded",
               "--port", str(port), "--applesim-port", str(applesim_port),
               "--mail-port", str(free_port())]  # fmt: skip
    run = processes.start("make-run", command)

    wait_until(
        lambda: "Ctrl-C stops everything." in run.log() or not run.is_running(),
        timeout=120,
        what="make run to be ready",
    )
    # Nothing may follow on the console once it is ready: not the web server's first answer,
    # nor the tasks the worker runs as it starts.
    assert http_answers(f"http://127.0.0.1:{port}/accounts/login/")
    worker_log = var_dir / "log" / "worker.log"
    wait_until(
        lambda: all(
            re.search(
                rf"Task dep_accounts\.tasks\.{task}\[[^\]]+\] succeeded", worker_log.read_text()
            )
            for task in ("token_expiry_refresh", "syncs_dispatch_due")
        ),
        timeout=60,
        what="the worker's start-up tasks",
    )
    password = (var_dir / "demo-admin-password").read_text()
    lines = [line for line in run.log().splitlines() if line.strip()]
    assert lines[-3:] == [
        f"mdmportal is ready: http://127.0.0.1:{port}/",
        f"Sign in as admin / {password}  (read-only: viewer / {password})",
        "Ctrl-C stops everything.",
    ]
    assert len(lines) < 15, "the workers' output goes to var/log/, not to the console"
    assert "celery@" in (var_dir / "log" / "worker.log").read_text()
    assert http_answers(f"http://127.0.0.1:{port}/accounts/login/")

    run.popen.send_signal(signal.SIGINT)
    run.popen.wait(timeout=30)
    assert not http_answers(f"http://127.0.0.1:{port}/accounts/login/")
    assert not http_answers(f"http://127.0.0.1:{applesim_port}/")
    assert "Traceback" not in run.log()
