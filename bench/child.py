"""One scenario in a process of its own: `python -m bench.child SCENARIO DATABASE SIZE`.

The parent (`python -m bench`) gives it its database and var directory in the environment.
It migrates the empty database, runs the scenario and prints its rows as one JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

RESULT_PREFIX = "BENCH-RESULT "
# Set by `python -m bench --profile`: the measured operations also run once under cProfile.
PROFILE_DIR_VARIABLE = "BENCH_PROFILE_DIR"
# The load scenario runs with DEBUG off, where settings hold only the licence's public key.
SIGNING_KEY_VARIABLE = "BENCH_LICENCE_SIGNING_KEY"
SCENARIOS = {
    "sync": "bench.sync",
    "pages": "bench.pages",
    "banner": "bench.banner",
    "expiry": "bench.expiry",
    "load": "bench.load",
    "renewal": "bench.renewal",
    "dispatch": "bench.dispatch",
    "feeds": "bench.feeds",
    "changelist": "bench.changelist",
    "scaleout": "bench.scaleout",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("database", choices=["sqlite", "postgres"])
    parser.add_argument("size", choices=["small", "full"])
    arguments = parser.parse_args(argv)

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # DEBUG would log every query (and format every bulk INSERT) inside the timed runs.
    settings.DEBUG = False
    logging.getLogger("applesim").setLevel(logging.WARNING)

    from bench.sizes import SIZES

    module = importlib.import_module(SCENARIOS[arguments.scenario])
    rows = module.scenario(SIZES[arguments.size], arguments.database)
    sys.stdout.write(RESULT_PREFIX + json.dumps([row.as_json() for row in rows]) + "\n")


if __name__ == "__main__":
    main()
