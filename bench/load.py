"""Scenario 6: under load, gunicorn with 2 workers on loopback, DEBUG off, PostgreSQL.

Requests per second on the DEP Accounts list (100 accounts, signed in) against a minimal
Django view on the same server (bench.urls), with the same load generator in the same run:
a fixed number of threads, each sending one request at a time on a new HTTP connection until a
deadline. The blocks go minimal, list, list, minimal. Over plain HTTP the session cookie,
Secure in production, is sent by hand. The server runs twice: with the settings' persistent
database connections, then with CONN_MAX_AGE=0, a database connection per request.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from bench import data
from bench.measure import Row, median, ms, percentile, process_peak_mb, ratio_text
from bench.sizes import Size
from bench.urls import MINIMAL_PATH
from dep_accounts.services.expiry import banner_refresh

BASE_DIR = Path(__file__).resolve().parent.parent
WORKERS = 2


@dataclass
class Load:
    """What one URL got: answers, their latencies, and the wall time they took."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _request(port: int, path: str, cookie: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def load_run(port: int, request: bytes, *, threads: int, seconds: float, into: Load) -> None:
    """`threads` clients, each one request at a time, until `seconds` have passed."""
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()

    def client() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status = _status(_get(port, request))
            except OSError as error:
                status, problem = 0, str(error)
            else:
                problem = f"HTTP {status}"
            latency = time.perf_counter() - start
            with lock:
                if status == 200:
                    into.latencies.append(latency)
                else:
                    into.failures.append(problem)

    started = time.perf_counter()
    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    into.seconds += time.perf_counter() - started


def _wait_until_serving(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}.")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{MINIMAL_PATH}", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on port {port} in {timeout:.0f} s.")


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def _serve(size: Size, cookie: str, env: dict[str, str]) -> tuple[Load, Load, float, float]:
    """gunicorn with `env` over the environment: the minimal view's load and the list's, the
    peak RSS of a worker, and the load generator's share of a CPU."""
    port = _free_port()
    log = Path(settings.VAR_DIR) / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "mdmportal.wsgi:application"]
    options = ["--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--log-level", "warning"]
    with log.open("ab") as output:
        server = subprocess.Popen(
            [*command, *options],
            cwd=BASE_DIR,
            env=os.environ | env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(port, server)
        list_request = _request(port, reverse("dep_accounts:list"), cookie)
        minimal_request = _request(port, MINIMAL_PATH, cookie)
        answer = _get(port, list_request)
        if _status(answer) != 200 or b"accounts-table" not in answer:
            raise RuntimeError(f"The list answered {answer[:300]!r}.")
        minimal, listed = Load(), Load()
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        for request, into in (
            (minimal_request, minimal),
            (list_request, listed),
            (list_request, listed),
            (minimal_request, minimal),
        ):
            load_run(
                port, request, threads=size.load_threads, seconds=size.load_seconds / 2, into=into
            )
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        worker_peak = max((process_peak_mb(pid) for pid in _workers(server.pid)), default=0.0)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    for name, load in (("minimal view", minimal), ("list", listed)):
        if load.failures or not load.latencies:
            raise RuntimeError(f"The {name} failed {len(load.failures)} times: {load.failures[:3]}")
    client_cpu = (cpu_end.ru_utime + cpu_end.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime) / (
        minimal.seconds + listed.seconds
    )
    return minimal, listed, worker_peak, client_cpu


def scenario(size: Size, database: str) -> list[Row]:
    if settings.ROOT_URLCONF != "bench.urls" or os.environ.get("DEBUG") != "false":
        raise RuntimeError("The load scenario runs with bench.settings and DEBUG=false.")
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()
    client.force_login(data.admin_create())
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    data.licence_create()
    data.accounts_create(count=size.load_accounts)
    banner_refresh()
    data.statistics_refresh()

    minimal, listed, worker_peak, client_cpu = _serve(size, cookie, {})
    # The same server, each request opening and closing its own database connection.
    closing_minimal, closing_list, _, _ = _serve(size, cookie, {"CONN_MAX_AGE": "0"})
    database_settings = settings.DATABASES["default"]
    ratio = listed.rps / minimal.rps
    return [
        Row(
            key=f"load.{database}",
            scenario=f"6. Under load, gunicorn {WORKERS} workers, DEP Accounts list "
            f"({size.load_accounts} accounts), Postgres",
            measured=f"{listed.rps:.0f} req/s, p50 {ms(median(listed.latencies))}, "
            f"p95 {ms(percentile(listed.latencies, 95))}",
            baseline=f"minimal view {minimal.rps:.0f} req/s, p50 "
            f"{ms(median(minimal.latencies))}, p95 {ms(percentile(minimal.latencies, 95))}",
            ratio=f"{ratio:.0%}",
            target=">= 50% of the minimal view",
            met=ratio >= 0.5,
            peak_memory=f"{worker_peak:.0f} MB RSS per worker",
            facts={
                "threads": size.load_threads,
                "seconds_per_url": size.load_seconds,
                "list_rps": listed.rps,
                "minimal_rps": minimal.rps,
                "list_requests": len(listed.latencies),
                "minimal_requests": len(minimal.latencies),
                "list_median_seconds": median(listed.latencies),
                "list_p95_seconds": percentile(listed.latencies, 95),
                "minimal_median_seconds": median(minimal.latencies),
                "minimal_p95_seconds": percentile(minimal.latencies, 95),
                "load_generator_cpu_share": client_cpu,
                "conn_max_age": database_settings["CONN_MAX_AGE"],
                "conn_health_checks": database_settings["CONN_HEALTH_CHECKS"],
            },
        ),
        Row(
            key=f"load_connections.{database}",
            scenario=f"6b. Persistent connections (CONN_MAX_AGE="
            f"{database_settings['CONN_MAX_AGE']}, health checks), list under load, Postgres",
            measured=f"{listed.rps:.0f} req/s, p95 {ms(percentile(listed.latencies, 95))}",
            baseline=f"CONN_MAX_AGE=0: {closing_list.rps:.0f} req/s, p95 "
            f"{ms(percentile(closing_list.latencies, 95))}",
            ratio=ratio_text(listed.rps / closing_list.rps),
            target="more req/s than a connection per request",
            met=listed.rps > closing_list.rps,
            facts={
                "list_rps": listed.rps,
                "list_rps_conn_max_age_0": closing_list.rps,
                "minimal_rps_conn_max_age_0": closing_minimal.rps,
                "list_p95_seconds_conn_max_age_0": percentile(closing_list.latencies, 95),
            },
        ),
    ]
