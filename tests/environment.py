"""The tests' settings environment, loaded with `-p tests.environment` before pytest-django reads
the settings: DEBUG on, so the settings make their development secrets under var/. (Django's
test runner still turns DEBUG off while the tests run.)"""

from __future__ import annotations

import os

os.environ["DEBUG"] = "true"
