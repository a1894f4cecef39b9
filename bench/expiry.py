"""Scenario 5: the hourly expiry and reminder tasks at 10,000 accounts.

The expiry task (`token_states_refresh`) writes only the accounts whose state the clock moved:
it is held within 3x of one UPDATE of exactly those rows, to exactly their new states, by id.
The clock goes forward one step and back, so the task and the UPDATE each move the same rows
each time, alternating. The banner it refreshes after is reported beside it.

The reminder task (`reminders_send`) in an hour with no new reminder, once every reminder due
has gone out: the same queries at 10,000 accounts as at 100. The run that sends them is
reported too; each reminder has its own transaction, so one account's failure stops no other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Case, Value, When
from django.utils import timezone

from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, profiled, query_count, ratio_text, timed
from bench.sizes import Size
from dep_accounts.models import DEPAccount, ReminderSent
from dep_accounts.selectors import banner_items
from dep_accounts.services.expiry import banner_refresh, token_states_refresh
from dep_accounts.services.reminders import reminders_send


def states() -> dict[int, str]:
    return dict(DEPAccount.objects.values_list("pk", "state"))


def update_by_id(new_states: dict[int, str]) -> None:
    """The baseline: one UPDATE of only the rows that change, each to its known new state."""
    DEPAccount.objects.filter(pk__in=list(new_states)).update(
        state=Case(*(When(pk=pk, then=Value(state)) for pk, state in new_states.items()))
    )


def _expiry_row(size: Size, database: str, start: datetime, few_queries: int) -> Row:
    later = start + timedelta(hours=size.expiry_step_hours)
    token_states_refresh(now=start)
    before = states()
    many_queries = query_count(lambda: token_states_refresh(now=later))
    after = states()
    moved = {pk for pk, state in after.items() if before[pk] != state}
    if not moved:
        raise RuntimeError("The clock's step moved no account: the expiry row measured nothing.")
    forward = {pk: after[pk] for pk in moved}
    back = {pk: before[pk] for pk in moved}

    task, update, written = [], [], []
    for _ in range(size.expiry_repeats):
        # At `later` now: back to `start`, forward again, each way once by the task and the UPDATE.
        seconds, count = timed(lambda: token_states_refresh(now=start))
        task.append(seconds)
        written.append(count)
        update.append(timed(lambda: update_by_id(forward))[0])
        update.append(timed(lambda: update_by_id(back))[0])
        seconds, count = timed(lambda: token_states_refresh(now=later))
        task.append(seconds)
        written.append(count)
    if states() != after or set(written) != {len(moved)}:
        raise RuntimeError(f"The expiry task wrote {sorted(set(written))} rows, not {len(moved)}.")
    banner = [timed(lambda: banner_refresh(now=later))[0] for _ in range(size.expiry_repeats)]
    profiled(f"expiry-{database}", lambda: token_states_refresh(now=start))
    token_states_refresh(now=later)

    measured, baseline = median(task), median(update)
    fixed = few_queries == many_queries
    return Row(
        key=f"expiry.{database}",
        scenario=f"5. Expiry task, {size.expiry_accounts:,} accounts, "
        f"{size.expiry_step_hours} h on, {DATABASE_LABELS[database]}",
        measured=f"{ms(measured)}, {len(moved)} rows written, {many_queries} "
        + ("query" if many_queries == 1 else "queries"),
        baseline=f"UPDATE of those rows by id {ms(baseline)}",
        ratio=ratio_text(measured / baseline),
        target=f"<= 3x, fixed queries ({few_queries} at {size.expiry_accounts_few})",
        met=measured <= 3 * baseline and fixed,
        facts={
            "task_seconds": task,
            "update_seconds": update,
            "rows_moved": len(moved),
            "rows_written": written,
            "banner_refresh_seconds": median(banner),
            "banner_items": len(banner_items()),
            "few_accounts": size.expiry_accounts_few,
            "few_queries": few_queries,
            "many_queries": many_queries,
        },
    )


def _reminders_sent(now: datetime) -> dict[str, int]:
    """Send what is due at `now`, then measure the same hour's next run, which sends nothing."""
    before = ReminderSent.objects.count()
    first_queries = query_count(lambda: reminders_send(now=now))
    sent = ReminderSent.objects.count() - before
    quiet = now + timedelta(minutes=30)
    quiet_queries = query_count(lambda: reminders_send(now=quiet))
    return {"first_queries": first_queries, "sent": sent, "quiet_queries": quiet_queries}


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    start = timezone.now()
    data.licence_create()
    data.admin_create()
    data.accounts_create(count=size.expiry_accounts_few, now=start)
    data.tokens_create()
    later = start + timedelta(hours=size.expiry_step_hours)
    token_states_refresh(now=start)
    few_queries = query_count(lambda: token_states_refresh(now=later))
    few_reminders = _reminders_sent(start)

    first_pk = DEPAccount.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1
    data.accounts_create(
        count=size.expiry_accounts - size.expiry_accounts_few,
        first=size.expiry_accounts_few,
        now=start,
    )
    data.tokens_create(first_pk=first_pk)
    data.statistics_refresh()
    expiry = _expiry_row(size, database, start, few_queries)
    many_reminders = _reminders_sent(later)
    quiet = [
        timed(lambda: reminders_send(now=later + timedelta(minutes=30)))[0]
        for _ in range(size.expiry_repeats)
    ]
    parity = many_reminders["quiet_queries"] == few_reminders["quiet_queries"]
    return [
        expiry,
        Row(
            key=f"reminders.{database}",
            scenario=f"5b. Reminder task, an hour with none new, "
            f"{size.expiry_accounts:,} accounts, {label}",
            measured=f"{many_reminders['quiet_queries']} queries, {ms(median(quiet))}",
            baseline=f"{few_reminders['quiet_queries']} queries at {size.expiry_accounts_few}",
            ratio=ratio_text(many_reminders["quiet_queries"] / few_reminders["quiet_queries"]),
            target="the same queries",
            met=parity,
            facts={
                "few": few_reminders,
                "many": many_reminders,
                "quiet_seconds": quiet,
            },
        ),
    ]
