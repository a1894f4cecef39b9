"""The repository stands on its own: nothing read from beside it, nothing written outside var/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[1]


def test_the_filesystem_broker_keeps_every_folder_under_var():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for name in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        assert Path(options[name]).is_relative_to(settings.VAR_DIR), name


def test_no_tracked_file_reads_from_beside_the_repository():
    beside = "../" + "shared"  # spelled in two pieces so that this file does not match itself
    tracked = subprocess.run(
        ["git", "grep", "-l", "-F", beside, "--", "."],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    # git grep exits 1 when nothing matches; 0 lists the files that do.
    assert tracked.returncode == 1, tracked.stdout or tracked.stderr


def test_the_sim_fixture_comes_from_applesims_own_pytest_plugin(request, sim):
    plugin = request.config.pluginmanager.get_plugin("applesim")
    assert plugin is not None
    assert plugin.__name__ == "applesim.pytest_plugin"
    assert sim.url.startswith("http://127.0.0.1:")
