"""`python -m bench [--size small|full] [--only NAME] [--database sqlite|postgres] [--profile]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report import results_write, summary, table_text
from bench.runs import BENCH_DIR, JOBS, job_run
from bench.sizes import SIZES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted({job.scenario for job in JOBS}),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], help="run only on this one")
    parser.add_argument(
        "--profile", action="store_true", help="also write cProfile reports to var/bench/profiles/"
    )
    parser.add_argument("--json", type=Path, help="where to write the results (default var/bench/)")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's var directory")
    arguments = parser.parse_args(argv)

    size = SIZES[arguments.size]
    jobs = [
        job
        for job in JOBS
        if (not arguments.only or job.scenario in arguments.only)
        and (not arguments.database or job.database == arguments.database)
    ]
    profile_dir = BENCH_DIR / "profiles" if arguments.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    errors: list[str] = []
    for job in jobs:
        print(f"bench: {job.name} ({size.name}) ...", file=sys.stderr, flush=True)
        result = job_run(job, size, profile_dir=profile_dir, keep=arguments.keep)
        print(f"bench: {job.name} took {result.seconds:.1f} s", file=sys.stderr, flush=True)
        rows += result.rows
        if result.error:
            errors.append(f"{job.name}: {result.error}")
            print(f"bench: {job.name} FAILED\n{result.error}", file=sys.stderr, flush=True)

    default_name = "results.json" if size.name == "full" else f"results-{size.name}.json"
    path = arguments.json or BENCH_DIR / default_name
    results_write(path, size=size.name, rows=rows, errors=errors)
    print(table_text(rows))
    print()
    print(summary(rows, errors))
    print(f"Written to {path} and {path.with_suffix('.md')}.")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
