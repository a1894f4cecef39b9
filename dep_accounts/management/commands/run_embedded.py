"""`make run`: applesim, a Celery worker with embedded beat and the web portal, in one terminal.

The embedded default needs nothing but Python: SQLite and Celery's filesystem broker under
var/. The demo is seeded on first start. Ctrl-C (or SIGTERM) stops every process together.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Start applesim, a Celery worker with embedded beat and the web portal together."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--applesim-port", type=int, default=8001)

    def handle(self, *args, host: str, port: int, applesim_port: int, **options) -> None:
        # applesim is a package of its own (applesim/), installed beside the portal for the demo.
        if importlib.util.find_spec("applesim.server") is None:
            raise CommandError(
                "applesim is not installed in this Python: run `make run`, or "
                "`pip install -e ./applesim`, then try again."
            )
        applesim_url = f"http://127.0.0.1:{applesim_port}"
        env = os.environ | {
            "DEP_API_URL": os.environ.get("DEP_API_URL", applesim_url),
            "APPLESIM_ABM_URL": os.environ.get("APPLESIM_ABM_URL", applesim_url + "/"),
            "PORTAL_BASE_URL": f"http://{host}:{port}",
            "PYTHONUNBUFFERED": "1",
        }
        settings.DEP_API_URL = env["DEP_API_URL"]
        settings.APPLESIM_ABM_URL = env["APPLESIM_ABM_URL"]
        python = sys.executable
        processes: list[subprocess.Popen] = []

        def start(name: str, command: list[str]) -> None:
            self.stdout.write(f"starting {name}: {' '.join(command)}")
            processes.append(subprocess.Popen(command, env=env, cwd=settings.BASE_DIR))  # noqa: S603

        def stop(*_args) -> None:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + 10
            for process in processes:
                try:
                    process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    process.kill()

        def stop_and_exit(*_args) -> None:
            stop()
            sys.exit(0)

        signal.signal(signal.SIGTERM, stop_and_exit)
        try:
            state = settings.VAR_DIR / "applesim.sqlite3"
            start(
                "applesim",
                [python, "-m", "applesim", "--port", str(applesim_port), "--state", str(state)],
            )
            _wait_until_up(applesim_url + "/")
            call_command("seed_demo", stdout=self.stdout)
            start(
                "worker + beat",
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
            )
            start(
                "web",
                [python, "manage.py", "runserver", f"{host}:{port}", "--noreload", "--insecure"],
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nmdmportal: http://{host}:{port}/   applesim (ABM): {applesim_url}/\n"
                    "Ctrl-C stops everything.\n"
                )
            )
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
            raise CommandError("A process of the embedded default stopped; stopping the others.")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping")
        finally:
            stop()


def _wait_until_up(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (a local http URL)
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise CommandError(f"applesim did not answer at {url} within {timeout:.0f} s.")
