"""The portal's settings with one addition for the load scenario: a minimal view to compare with.

`DJANGO_SETTINGS_MODULE=bench.settings` serves every page of the portal (bench.urls includes
mdmportal.urls) plus /bench/minimal/. Everything else comes from the environment, as in
production.
"""

from __future__ import annotations

from mdmportal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
