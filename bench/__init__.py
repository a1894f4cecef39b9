"""`make bench`: the portal at 100,000 devices and 1,000 DEP accounts, as ratios.

Absolute times on a shared machine are noisy, so every target is a ratio against a baseline
measured in the same process, interleaved with the measurement where the data allows it.

`python -m bench [--size small|full] [--only NAME] [--database sqlite|postgres] [--profile]`
runs each scenario in a child process (`python -m bench.child`) with a database of its own
(an SQLite file under var/bench/tmp/, or a PostgreSQL database created and dropped for it),
prints a table and writes var/bench/results.json (results-small.json for --size small) and a
Markdown copy of the table for the README. The small size runs in `make test` so that the
scripts keep working; only the full size says anything about the targets.
"""
