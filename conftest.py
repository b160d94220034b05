"""Test-wide settings.

Under CI (CI=true) hypothesis runs derandomized: the same examples every run, so a red CI
is reproducible and not a coin toss, and without per-example deadlines: a loaded machine
must not fail a test on time (timing belongs in benchmarks). On a developer's machine it
explores new examples on every run (and keeps no database in the tree).
"""

import os

from hypothesis import HealthCheck, settings

# Rigs: `--rig FILE` and `@pytest.mark.needs(...)` (docs/hil.md).
pytest_plugins = ["estran.rig.pytest_plugin", "pytester"]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", database=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
