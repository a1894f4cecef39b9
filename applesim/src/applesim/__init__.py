"""Apple's side, simulated: the DEP web service, an ABM-like page, and a control API for tests.

A separate service that imports nothing from the portal. Run it with
`python -m applesim --host 127.0.0.1 --port 8001 --state var/applesim.sqlite3`, or start one
inside tests with `applesim.testing.sim_start()`. The control API is described in
`applesim.control`, fault scripts in `applesim.faults`.
"""
