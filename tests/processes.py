"""Run the portal's real commands as separate processes, the way a deployment does.

Each process writes its output to a log file; `Processes.stop_all` stops every process it
started (SIGTERM, then SIGKILL to its whole process group after a timeout) and the logs are
printed when a test fails, so a failure shows what each process said.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

PYTHON = sys.executable
BIN = Path(sys.executable).parent
BASE_DIR = Path(__file__).resolve().parent.parent

# Everything the settings read from the environment: a subprocess gets only what a test gives it,
# never a value the test runner happens to have.
SETTINGS_VARIABLES = [
    "DEBUG",
    "SECRET_KEY",
    "SECRETS_ENCRYPTION_KEYS",
    "LICENCE_PUBLIC_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "CONN_MAX_AGE",
    "CONN_HEALTH_CHECKS",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "DEP_API_URL",
    "DEP_API_TIMEOUT_SECONDS",
    "APPLESIM_ABM_URL",
    "DEP_SYNC_LEASE_SECONDS",
    "DEP_SYNC_QUEUED_SECONDS",
    "DEP_TOKEN_WARNING_DAYS",
    "DEP_TOKEN_CRITICAL_DAYS",
    "EMAIL_URL",
    "DEFAULT_FROM_EMAIL",
    "PORTAL_BASE_URL",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "MDMPORTAL_VAR_DIR",
    "METRICS_TOKEN",
    "MAX_REQUEST_BYTES",
    "TRUSTED_PROXY_COUNT",
    "WEBHOOK_ALLOWED_NETWORKS",
    "LOCAL_LOGIN",
    "OIDC_PROVIDERS",
    "MFA_REQUIRED_FOR_ADMINS",
    "MFA_TOTP_ISSUER",
    "SSO_INACTIVE_DAYS",
    "DJANGO_SETTINGS_MODULE",
    "LOG_LEVEL",
]

T = TypeVar("T")


def portal_env(**values: str) -> dict[str, str]:
    """The environment of a portal process: this one's, without settings, plus `values`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTINGS_VARIABLES and name.removesuffix("_FILE") not in SETTINGS_VARIABLES
    }
    return env | {"PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "mdmportal.settings"} | values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], T], *, timeout: float, what: str, every: float = 0.2) -> T:
    """Poll `condition` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(every)


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def manage(env: Mapping[str, str], *arguments: str, timeout: float = 60) -> str:
    """Run `manage.py` with `env`; return its output, or fail with everything it printed."""
    completed = subprocess.run(
        [PYTHON, "manage.py", *arguments],
        env=dict(env),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(arguments)[:200]} exited with {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout


class Process:
    """One long-running command, its output in a log file."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log_path = log
        self.ended = False
        with log.open("ab") as output:
            # A session of its own: stopping it reaches its children (gunicorn and
            # prefork workers) and nothing else.
            self.popen = subprocess.Popen(
                command,
                env=dict(env),
                cwd=BASE_DIR,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost machine would; children die with it."""
        if self.ended:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        # Its process id may now be reused by a stranger, which must never be signalled.
        self.ended = True

    def terminate(self) -> None:
        if not self.ended and self.is_running():
            self.popen.terminate()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM and wait up to `timeout`; then whatever is left of its session is killed."""
        self.terminate()
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        self.kill()


class Processes:
    """The processes of one topology, with their logs in `log_dir`."""

    def __init__(self, log_dir: Path, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.env = dict(env)
        self.started: list[Process] = []

    def start(self, name: str, command: list[str], **extra_env: str) -> Process:
        log = self.log_dir / f"{name}-{len(self.started)}.log"
        process = Process(name, command, self.env | extra_env, log)
        self.started.append(process)
        return process

    def applesim(self, port: int, state: Path) -> Process:
        command = [PYTHON, "-m", "applesim", "--port", str(port), "--state", str(state)]
        process = self.start("applesim", command)
        wait_until(
            lambda: self._running(process) and http_answers(f"http://127.0.0.1:{port}/"),
            timeout=20,
            what="applesim to answer",
        )
        return process

    def worker(self, *options: str) -> Process:
        command = [str(BIN / "celery"), "-A", "mdmportal", "worker", "--loglevel", "INFO"]
        process = self.start("worker", [*command, *options])
        wait_until(
            lambda: self._running(process) and " ready." in process.log(),
            timeout=30,
            what="the Celery worker to be ready",
        )
        return process

    def _running(self, process: Process) -> bool:
        if not process.is_running():
            raise AssertionError(f"{process.name} exited with {process.popen.returncode}.")
        return True

    def stop_all(self, timeout: float = 10) -> None:
        """Stop every process started, all at once, within `timeout` (then kill)."""
        for process in self.started:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.started:
            process.stop(timeout=max(deadline - time.monotonic(), 0.1))

    def logs(self) -> str:
        return "\n".join(
            f"----- {p.name} (pid {p.pid}): {' '.join(p.command)}\n{p.log()}" for p in self.started
        )


@contextmanager
def logs_on_failure(processes: Processes) -> Iterator[None]:
    """Print what every process said if the block fails."""
    try:
        yield
    except BaseException:
        print(processes.logs())
        raise
