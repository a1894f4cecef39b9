"""pytest plugin: a `sim` fixture serving applesim on 127.0.0.1 for the whole test session.

Installed with applesim (entry point `pytest11`), so any project's tests can ask for `sim`:

    def test_account(sim):
        org_id = sim.control.organisation_create("Example School")
        ...

Tests that share the session's simulator call `sim.control.reset()` to start from nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from applesim.testing import RunningSim, sim_start


@pytest.fixture(scope="session")
def sim() -> Iterator[RunningSim]:
    """applesim on a free port of 127.0.0.1, in memory, for the whole test session."""
    running = sim_start()
    yield running
    running.stop()
