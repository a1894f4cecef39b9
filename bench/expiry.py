"""Scenario 5: the hourly expiry task (token_states_refresh, then banner_refresh) at 10,000
accounts: a fixed number of queries, and within 3x of one bulk SQL UPDATE over the same rows.

The baseline, `UPDATE ... SET state = 'ok'` over every account with a token, and the task
alternate; each leaves the states for the other to rewrite, so both write every row.
"""

from __future__ import annotations

from django.db import connection

from bench import data
from bench.measure import DATABASE_LABELS, Row, median, ms, profiled, query_count, ratio_text, timed
from bench.sizes import Size
from dep_accounts.models import DEPAccount
from dep_accounts.selectors import banner_items
from dep_accounts.services.expiry import banner_refresh, token_states_refresh


def expiry_task() -> None:
    """What dep_accounts.tasks.token_expiry_refresh does about states and the banner."""
    token_states_refresh()
    banner_refresh()


def bulk_update() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {DEPAccount._meta.db_table} SET state = %s WHERE token_expires_at IS NOT NULL",
            [DEPAccount.State.OK],
        )


def scenario(size: Size, database: str) -> list[Row]:
    label = DATABASE_LABELS[database]
    data.licence_create()
    data.accounts_create(count=size.expiry_accounts_few)
    few_queries = query_count(expiry_task)
    data.accounts_create(
        count=size.expiry_accounts - size.expiry_accounts_few, first=size.expiry_accounts_few
    )
    data.statistics_refresh()
    many_queries = query_count(expiry_task)

    task, update, states, banner = [], [], [], []
    for repeat in range(size.expiry_repeats):
        for way in ("task", "update") if repeat % 2 else ("update", "task"):
            if way == "task":
                task.append(timed(expiry_task)[0])
            else:
                update.append(timed(bulk_update)[0])
        bulk_update()
        states.append(timed(token_states_refresh)[0])
        banner.append(timed(banner_refresh)[0])
    profiled(f"expiry-{database}", expiry_task)
    expired = DEPAccount.objects.filter(state=DEPAccount.State.EXPIRED).count()
    if not expired or expired == size.expiry_accounts:
        raise RuntimeError(f"The expiry task left {expired} expired accounts.")

    measured, baseline = median(task), median(update)
    fixed = few_queries == many_queries
    return [
        Row(
            key=f"expiry.{database}",
            scenario=f"5. Expiry task, {size.expiry_accounts:,} accounts, {label}",
            measured=f"{ms(measured)}, {many_queries} queries",
            baseline=f"one UPDATE {ms(baseline)}",
            ratio=ratio_text(measured / baseline),
            target=f"<= 3x, fixed queries ({few_queries} at {size.expiry_accounts_few})",
            met=measured <= 3 * baseline and fixed,
            facts={
                "task_seconds": measured,
                "update_seconds": baseline,
                "token_states_refresh_seconds": median(states),
                "banner_refresh_seconds": median(banner),
                "banner_items": len(banner_items()),
                "few_accounts": size.expiry_accounts_few,
                "few_queries": few_queries,
                "many_queries": many_queries,
            },
        )
    ]
