"""Shared test configuration: Hypothesis profiles.

Profiles (select with ``HYPOTHESIS_PROFILE=NAME``):

* ``dev`` (default) -- random exploration, moderate example counts;
* ``ci`` -- what ``make test`` uses: derandomized, so a CI run is reproducible, with
  example counts sized to keep the whole suite under ten minutes on two cores;
* ``thorough`` -- many more examples, for a long local run;
* ``crosshair`` -- the CrossHair backend (symbolic execution through hypothesis-crosshair),
  about 40x slower per example; only tests marked for it are meant to run this way:
  ``HYPOTHESIS_PROFILE=crosshair pytest -m crosshair_backend``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.register_profile(
    "crosshair", backend="crosshair", max_examples=50, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
