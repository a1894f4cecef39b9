"""Scenario 8: the sync dispatcher, when two workers start together and the beat's next dispatch
comes while their syncs still wait: exactly one sync queued per due account.

The two dispatches run at once in two threads, each with its own database connection (as two
worker processes have), released by a barrier; a third follows a minute later. The syncs they
queue are read back from the child's own broker (kombu's filesystem transport), one message per
sync, so what is counted is what the workers would run. Before issue 14 each dispatch queued
every due account: three dispatches made three syncs of each.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, query_count, timed
from bench.sizes import Size
from dep_accounts.models import DEPAccount
from dep_accounts.services.sync_requests import accounts_due_for_sync, syncs_dispatch

SYNC_TASK = "dep_accounts.services.sync.account_sync"


def _broker_folder() -> Path:
    return Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"]))


def syncs_queued() -> Counter[int]:
    """Syncs waiting in the broker, per account."""
    queued: Counter[int] = Counter()
    for message in _broker_folder().iterdir():
        headers = json.loads(message.read_bytes())["headers"]
        if headers["task"] == SYNC_TASK:
            queued[int(headers["argsrepr"].strip("(),"))] += 1
    return queued


def queue_empty() -> None:
    for message in _broker_folder().iterdir():
        message.unlink()
    DEPAccount.objects.update(sync_queued_until=None)


def two_at_once(when) -> list[float]:
    """Two dispatches released together; the seconds each took."""
    barrier = threading.Barrier(2)
    seconds: list[float] = [0.0, 0.0]
    crashes: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            seconds[index] = timed(lambda: syncs_dispatch(now=when))[0]
        except BaseException as exc:
            crashes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if crashes:
        raise crashes[0]
    return seconds


def _round(size_accounts: int) -> dict[str, Any]:
    # Every account synced within the hour: an hour and a minute on, each one is due.
    when = timezone.now() + timedelta(minutes=61)
    queue_empty()
    due = set(accounts_due_for_sync(now=when))
    dispatch_seconds = two_at_once(when)
    later = when + timedelta(minutes=1)
    dispatch_seconds.append(timed(lambda: syncs_dispatch(now=later))[0])
    queued = syncs_queued()
    queue_empty()
    queries = query_count(lambda: syncs_dispatch(now=when))
    return {
        "accounts": size_accounts,
        "due": len(due),
        "queued": sum(queued.values()),
        "accounts_queued_once": sum(1 for pk in due if queued[pk] == 1),
        "not_due_queued": sum(1 for pk in queued if pk not in due),
        "dispatch_seconds": dispatch_seconds,
        "queries": queries,
    }


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    data.licence_create()
    data.accounts_create(count=size.accounts_few)
    few = _round(size.accounts_few)
    data.accounts_create(count=size.accounts_many - size.accounts_few, first=size.accounts_few)
    data.statistics_refresh()
    many = _round(size.accounts_many)
    if not many["due"]:
        raise RuntimeError("No account was due: the dispatch scenario measured nothing.")
    once = all(r["accounts_queued_once"] == r["due"] == r["queued"] for r in (few, many))
    return [
        Row(
            key=f"dispatch.{database}",
            scenario=f"8. Dispatch, 2 workers starting together + the next beat, "
            f"{size.accounts_many:,} accounts, {label}",
            measured=f"{many['queued']:,} syncs queued, {many['queries']} queries, "
            f"{ms(median(many['dispatch_seconds']))} per dispatch",
            baseline=f"{many['due']:,} due accounts",
            ratio=f"{many['queued'] / many['due']:.2f} per account",
            target=f"exactly 1 per due account, fixed queries ({few['queries']} at "
            f"{size.accounts_few})",
            met=once and few["queries"] == many["queries"],
            facts={"few": few, "many": many},
        )
    ]
