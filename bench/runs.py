"""The parent's side: a child process per scenario and database, each with a database of its own.

A child gets only the settings variables given here (never the caller's), an SQLite file or a
PostgreSQL database made for it and dropped after, and a var directory of its own under
var/bench/tmp/ where the development secrets and the broker folders go.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.child import PROFILE_DIR_VARIABLE, RESULT_PREFIX, SIGNING_KEY_VARIABLE
from bench.sizes import Size

# Everything the settings read from the environment: a child gets only what the bench gives it.
from tests.processes import SETTINGS_VARIABLES

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = BASE_DIR / "var" / "bench"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"


@dataclass(frozen=True)
class Job:
    scenario: str
    database: str

    @property
    def name(self) -> str:
        return f"{self.scenario}.{self.database}"


JOBS = [
    Job("sync", "sqlite"),
    Job("sync", "postgres"),
    Job("pages", "sqlite"),
    Job("pages", "postgres"),
    Job("banner", "sqlite"),
    Job("banner", "postgres"),
    Job("expiry", "sqlite"),
    Job("expiry", "postgres"),
    Job("renewal", "sqlite"),
    Job("renewal", "postgres"),
    Job("dispatch", "sqlite"),
    Job("dispatch", "postgres"),
    Job("feeds", "sqlite"),
    Job("feeds", "postgres"),
    Job("changelist", "sqlite"),
    Job("changelist", "postgres"),
    # Celery workers over Redis, as production runs them.
    Job("scaleout", "postgres"),
    # Production's topology: DEBUG off, PostgreSQL, gunicorn.
    Job("load", "postgres"),
]


@dataclass
class JobResult:
    job: Job
    seconds: float
    rows: list[dict] = field(default_factory=list)
    error: str = ""


def _base_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTINGS_VARIABLES and name.removesuffix("_FILE") not in SETTINGS_VARIABLES
    }
    return env | {
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "mdmportal.settings",
        # The embedded scenarios run on development secrets; the load scenario turns it off.
        "DEBUG": "true",
    }


def _production_env() -> dict[str, str]:
    """DEBUG off needs every secret given; the licence key pair is the bench's own."""
    signing_key = Ed25519PrivateKey.generate()
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECRETS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "LICENCE_PUBLIC_KEY": base64.b64encode(
            signing_key.public_key().public_bytes_raw()
        ).decode(),
        SIGNING_KEY_VARIABLE: base64.b64encode(signing_key.private_bytes_raw()).decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
    }


@contextmanager
def _database(job: Job, work_dir: Path) -> Iterator[str]:
    """The DATABASE_URL of a database that exists only for this job."""
    if job.database == "sqlite":
        yield f"sqlite:///{work_dir / 'bench.sqlite3'}"
        return
    name = f"mdmportal_bench_{os.getpid()}_{job.scenario}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def job_run(job: Job, size: Size, *, profile_dir: Path | None, keep: bool) -> JobResult:
    """Run one job's child process; its rows, or why it failed."""
    started = time.perf_counter()
    work_dir = BENCH_DIR / "tmp" / f"{os.getpid()}-{job.name}"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    log = work_dir / "child.log"
    try:
        with _database(job, work_dir) as database_url:
            env = _base_env() | {"DATABASE_URL": database_url, "MDMPORTAL_VAR_DIR": str(work_dir)}
            if job.scenario == "load":
                env |= _production_env()
            if profile_dir is not None:
                env[PROFILE_DIR_VARIABLE] = str(profile_dir)
            output = _child_run(job, size, env, log)
    except (OSError, psycopg.Error, subprocess.SubprocessError, RuntimeError) as error:
        return JobResult(job, time.perf_counter() - started, error=str(error))
    finally:
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    rows = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
    return JobResult(job, time.perf_counter() - started, rows=rows)


def _child_run(job: Job, size: Size, env: dict[str, str], log: Path) -> str:
    command = [sys.executable, "-m", "bench.child", job.scenario, job.database, size.name]
    with log.open("wb") as errors:
        # A session of its own: a timeout stops it and whatever it started (gunicorn).
        child = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
        try:
            output, _ = child.communicate(timeout=size.child_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise RuntimeError(
                f"{job.name} did not finish in {size.child_timeout:.0f} s:\n{_tail(log)}"
            ) from None
    text = output.decode(errors="replace")
    if child.returncode != 0 or RESULT_PREFIX not in text:
        raise RuntimeError(f"{job.name} exited with {child.returncode}:\n{_tail(log)}")
    return text


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
