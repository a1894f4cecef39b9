"""`make bench` keeps working: the same scripts at a small size, every scenario's row present.

Timing targets mean something only at full size, under `make bench`; here the facts that hold
at any size are checked: the query counts. Needs PostgreSQL on 127.0.0.1, as `make test` has.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgres")
SYNC_ROWS = ("floor", "naive", "memory", "incremental")
PAGE_ROWS = ("accounts", "accounts_page", "devices")
ROWS = [
    *(f"sync.{row}.{db}" for row in SYNC_ROWS for db in DATABASES),
    *(f"pages.{row}.{db}" for row in PAGE_ROWS for db in DATABASES),
    *(f"banner.{accounts}.{db}" for accounts in ("few", "many") for db in DATABASES),
    *(f"expiry.{db}" for db in DATABASES),
    "load.postgres",
]


@pytest.fixture(scope="module")
def bench_rows(tmp_path_factory) -> dict[str, dict]:
    results = tmp_path_factory.mktemp("bench") / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "small", "--json", str(results)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-5000:]
    return {row["key"]: row for row in json.loads(results.read_text())["rows"]}


def test_every_scenario_reports_a_row_with_its_ratio_and_target(bench_rows):
    assert sorted(bench_rows) == sorted(ROWS)
    for row in bench_rows.values():
        assert row["measured"] and row["target"], row
        assert isinstance(row["met"], bool)


def test_the_lists_send_as_many_queries_at_many_rows_as_at_few(bench_rows):
    for database in DATABASES:
        for page in ("accounts", "devices"):
            queries = bench_rows[f"pages.{page}.{database}"]["facts"]["queries"]
            assert queries["many"] == queries["few"], (page, database, queries)
        queries = bench_rows[f"pages.accounts.{database}"]["facts"]["queries"]
        assert queries["one_page"] == queries["few"], (database, queries)


def test_the_banner_costs_a_page_at_most_one_query(bench_rows):
    for database in DATABASES:
        for accounts in ("few", "many"):
            facts = bench_rows[f"banner.{accounts}.{database}"]["facts"]
            assert facts["queries_added"] <= 1, facts
            assert facts["banner_items_queries"] <= 1, facts


def test_the_expiry_task_sends_as_many_queries_at_many_accounts_as_at_few(bench_rows):
    for database in DATABASES:
        facts = bench_rows[f"expiry.{database}"]["facts"]
        assert facts["many_queries"] == facts["few_queries"], facts


def test_the_sync_scenarios_saw_every_device(bench_rows):
    for database in DATABASES:
        facts = bench_rows[f"sync.floor.{database}"]["facts"]
        assert len(facts["ours_seconds"]) == len(facts["floor_seconds"]) >= 1
        assert facts["naive_devices"] <= facts["devices"]
