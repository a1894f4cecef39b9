from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdmportal.settings")

app = Celery("mdmportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _expiry_refresh_on_start(sender, **kwargs) -> None:
    """Compute expiry states and queue due syncs when a worker starts, not an hour later."""
    sender.app.send_task("dep_accounts.tasks.token_expiry_refresh")
    sender.app.send_task("dep_accounts.tasks.syncs_dispatch_due")
