from __future__ import annotations

import os

from celery import Celery, Task, signals
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdmportal.settings")


class AfterCommitTask(Task):
    """A task queued only once the transaction that asked for it has committed (as pretix's
    TransactionAwareTask): a worker must never look for rows that are not there yet. Outside
    a transaction it is queued at once, and a broker error reaches the caller."""

    # Returns None, not Celery's AsyncResult: the task does not exist until the commit.
    def apply_async(self, *args, **kwargs) -> None:  # type: ignore[override]
        transaction.on_commit(lambda: super(AfterCommitTask, self).apply_async(*args, **kwargs))


app = Celery("mdmportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _expiry_refresh_on_start(sender, **kwargs) -> None:
    """Compute expiry states and queue due syncs when a worker starts, not an hour later."""
    sender.app.send_task("dep_accounts.tasks.token_expiry_refresh")
    sender.app.send_task("dep_accounts.tasks.syncs_dispatch_due")
