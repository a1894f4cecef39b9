"""`make run`: applesim, a Celery worker with embedded beat and the web portal, in one terminal.

The embedded default needs nothing but Python: SQLite and Celery's filesystem broker under
var/. The ports are checked before anything starts; the demo is seeded (what is missing of it)
once Apple's side answers; each process writes to var/log/<name>.log, so that the console ends
with the URL, the demo's credentials and how to stop. Ctrl-C (or SIGTERM) stops every process
together, and so does any one of them stopping.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from dep_accounts.management.commands.seed_demo import credentials_line


@dataclass(frozen=True)
class Service:
    """One process of the embedded default, and how to tell that it is ready."""

    name: str
    command: list[str]
    # The port it serves HTTP on: checked free before anything starts, ready when it answers.
    port: int | None = None
    # The `make run` variable that chooses that port.
    port_variable: str = ""
    # Or: ready when its log shows this text.
    ready_text: str = ""
    ready_seconds: float = 30


class Running:
    """A started service: its process and its log file under var/log/."""

    def __init__(self, service: Service, env: Mapping[str, str], log_dir: Path) -> None:
        self.service = service
        self.log_path = log_dir / f"{service.name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self._log.write(f"\n----- {time.strftime('%Y-%m-%d %H:%M:%S')} starting\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(  # noqa: S603 (our own commands)
            service.command,
            env=dict(env),
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stopped_error(self) -> CommandError:
        """What to say when the process ended on its own: its exit code and last log line."""
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        last = lines[-1].strip() if lines else ""
        return CommandError(
            f"{self.service.name} stopped (exit code {self.process.returncode})"
            f"{': ' + last if last else ''}. See {_shown(self.log_path)}."
        )

    def wait_until_ready(self, host: str) -> None:
        """Until it answers (or its log says so); fail at once if the process ends."""
        deadline = time.monotonic() + self.service.ready_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.stopped_error()
            if self._is_ready(host):
                return
            time.sleep(0.2)
        raise CommandError(
            f"{self.service.name} was not ready within {self.service.ready_seconds:.0f} s. "
            f"See {_shown(self.log_path)}."
        )

    def _is_ready(self, host: str) -> bool:
        if self.service.port is not None:
            return _http_answers(f"http://{host}:{self.service.port}/")
        return self.service.ready_text in self.log_path.read_text(errors="replace")

    def stop(self, timeout: float) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class Command(BaseCommand):
    help = "Start applesim, a Celery worker with embedded beat and the web portal together."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--applesim-port", type=int, default=8001)
        parser.add_argument("--mail-port", type=int, default=1025)
        parser.add_argument("--idpsim-port", type=int, default=8002)

    def handle(
        self,
        *args,
        host: str,
        port: int,
        applesim_port: int,
        mail_port: int,
        idpsim_port: int,
        **options,
    ) -> None:
        # applesim is a package of its own (applesim/), installed beside the portal for the demo.
        if importlib.util.find_spec("applesim.server") is None:
            raise CommandError(
                "applesim is not installed in this Python: run `make run`, or "
                "`pip install -e ./applesim`, then try again."
            )
        applesim_url = f"http://127.0.0.1:{applesim_port}"
        idpsim = idpsim_demo(port=idpsim_port, portal=f"http://{host}:{port}")
        env = (
            os.environ
            | (idpsim.env if idpsim else {})
            | {
                "DEP_API_URL": os.environ.get("DEP_API_URL", applesim_url),
                "APPLESIM_ABM_URL": os.environ.get("APPLESIM_ABM_URL", applesim_url + "/"),
                "PORTAL_BASE_URL": f"http://{host}:{port}",
                # A webhook receiver tried out next to the demo listens on this machine.
                "WEBHOOK_ALLOWED_NETWORKS": os.environ.get(
                    "WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128"
                ),
                # The demo's mail catcher keeps every email: Admin > Outbox shows them.
                "EMAIL_URL": os.environ.get("EMAIL_URL", f"smtp://127.0.0.1:{mail_port}"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        settings.DEP_API_URL = env["DEP_API_URL"]
        settings.APPLESIM_ABM_URL = env["APPLESIM_ABM_URL"]
        python = sys.executable
        # Apple's side (and any other outside service the portal talks to) starts first: the
        # demo is seeded through it before the portal's own processes start.
        outside = [
            Service(
                "applesim",
                [
                    python,
                    "-m",
                    "applesim",
                    "--port",
                    str(applesim_port),
                    "--state",
                    str(settings.VAR_DIR / "applesim.sqlite3"),
                ],
                port=applesim_port,
                port_variable="APPLESIM_PORT",
                ready_seconds=20,
            ),
            Service(
                "mailcatcher",
                [python, "manage.py", "mailcatcher", "--port", str(mail_port)],
                ready_text="mailcatcher: smtp://",
            ),
        ]
        if idpsim:
            outside.append(
                Service("idpsim", idpsim.command, port=idpsim_port, port_variable="IDPSIM_PORT")
            )
        portal = [
            Service(
                "worker",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "mdmportal",
                    "worker",
                    "--beat",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                    "--schedule",
                    str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
                ],
                ready_text=" ready.",
                ready_seconds=60,
            ),
            Service(
                "web",
                [python, "manage.py", "runserver", f"{host}:{port}", "--noreload", "--insecure"],
                port=port,
                port_variable="PORT",
            ),
        ]
        _ports_check(host, outside + portal)
        call_command("migrate", interactive=False, verbosity=0)
        log_dir = settings.VAR_DIR / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        running: list[Running] = []

        def start(services: list[Service]) -> None:
            for service in services:
                self.stdout.write(f"starting {service.name} (log: {_shown(log_dir)}/)")
                running.append(Running(service, env, log_dir))
            for started in running[-len(services) :]:
                started.wait_until_ready(host)

        def stop() -> None:
            deadline = time.monotonic() + 10
            for started in running:
                if started.process.poll() is None:
                    started.process.terminate()
            for started in running:
                started.stop(timeout=max(deadline - time.monotonic(), 0.1))

        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        try:
            start(outside)
            call_command("seed_demo", no_credentials=True, stdout=self.stdout)
            start(portal)
            self.stdout.write("")
            self.stdout.write(f"ABM (applesim): {applesim_url}/abm/")
            if idpsim:
                issuer = idpsim.env["OIDC_DEMO_ISSUER"]
                self.stdout.write(f"Demo IdP (idpsim): {issuer} (docs/sso.md)")
            else:
                self.stdout.write(
                    "Demo IdP left out: Node.js is not installed (apt-get install nodejs npm, "
                    "then make run again)."
                )
            self.stdout.write(self.style.SUCCESS(f"mdmportal is ready: http://{host}:{port}/"))
            if line := credentials_line():
                self.stdout.write(self.style.WARNING(line))
            self.stdout.write("Ctrl-C stops everything.")
            while True:
                for started in running:
                    if started.process.poll() is not None:
                        raise started.stopped_error()
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping")
        finally:
            stop()


def _ports_check(host: str, services: list[Service]) -> None:
    """Refuse to start when a port is taken (or chosen twice), naming it and another choice."""
    chosen = [service for service in services if service.port is not None]
    ports = {service.port for service in chosen}
    checked: set[int | None] = set()
    for service in chosen:
        assert service.port is not None
        if service.port in checked or not _port_free(host, service.port):
            suggested = _port_suggest(host, service.port, ports)
            choices = " ".join(
                f"{other.port_variable}={suggested if other is service else other.port}"
                for other in chosen
            )
            raise CommandError(
                f"Port {service.port} ({service.name}) is already in use. Stop the program "
                f"that uses it, or choose other ports: make run {choices}"
            )
        checked.add(service.port)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        # As the servers bind: a port left in TIME_WAIT by a previous run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _port_suggest(host: str, port: int, taken: set[int | None]) -> int:
    """A free port near `port`, for the message."""
    for candidate in range(port + 10, port + 200):
        if candidate not in taken and _port_free(host, candidate):
            return candidate
    return port + 10


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (a local http URL)
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _shown(path: Path) -> str:
    """A path as the admin typed make run: relative to the repository when it is inside."""
    try:
        return str(path.relative_to(settings.BASE_DIR))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class IdpSim:
    command: list[str]
    env: dict[str, str]


def idpsim_demo(*, port: int, portal: str) -> IdpSim | None:
    """The Demo IdP (idpsim/, Node's oidc-provider) and the OIDC_* settings that point at it;
    None on a machine without Node.js, where the demo signs in with passwords only."""
    if shutil.which("node") is None or not (settings.BASE_DIR / "idpsim/node_modules").is_dir():
        return None
    secret_file = settings.VAR_DIR / "idpsim-client-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    issuer = f"http://127.0.0.1:{port}"
    command = [
        "node",
        str(settings.BASE_DIR / "idpsim" / "server.js"),
        f"--port={port}",
        f"--client-secret-file={secret_file}",
        f"--redirect-uri={portal}/accounts/oidc/demo/login/callback/",
        f"--post-logout-redirect-uri={portal}/accounts/login/",
    ]
    env = {
        "OIDC_PROVIDERS": "demo",
        "OIDC_DEMO_NAME": "Demo IdP",
        "OIDC_DEMO_ISSUER": issuer,
        "OIDC_DEMO_CLIENT_ID": "mdmportal",
        "OIDC_DEMO_CLIENT_SECRET_FILE": str(secret_file),
        "OIDC_DEMO_ROLE_CLAIM": "groups",
        "OIDC_DEMO_ADMIN_VALUES": "mdm-admins",
        "OIDC_DEMO_VIEWER_VALUES": "mdm-viewers",
    }
    return IdpSim(command=command, env=env)
