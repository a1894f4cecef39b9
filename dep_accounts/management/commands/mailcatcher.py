"""`manage.py mailcatcher`: the demo's mail server, which keeps every email instead of sending it.

`make run` starts it and points EMAIL_URL at it, so the renewal reminder the demo sends at 10
days really goes through SMTP, and Admin > Outbox (DEBUG only) shows it. It listens on
127.0.0.1 only and keeps the emails in a Maildir under var/.
"""

from __future__ import annotations

import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Catch the portal's emails on 127.0.0.1 (the demo's mail server) into var/mail/."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=1025)

    def handle(self, *args, port: int, **options) -> None:
        maildir = settings.MAILCATCHER_DIR
        maildir.parent.mkdir(parents=True, exist_ok=True)
        controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port)
        controller.start()
        self.stdout.write(f"mailcatcher: smtp://127.0.0.1:{port}, emails kept in {maildir}")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
