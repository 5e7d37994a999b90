"""Hypothesis profiles for the property tests, and how many examples each test runs.

``ci`` (the default) is derandomized: every run, on every machine, tries the same examples,
with no example database and no time limits, so a test passes or fails for a reason.
``fuzz`` (``HYPOTHESIS_PROFILE=fuzz``, what ``make fuzz`` runs) draws random examples,
``FUZZ_EXAMPLES`` (default 500) per test, and keeps failures in ``.hypothesis/`` to replay.
A failure it finds belongs in the test as an explicit ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))

# Timing health checks would make the outcome depend on the machine's load.
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES, **_COMMON)


def n_examples(ci: int) -> int:
    """Examples for one property test: ``ci`` under the ci profile, else ``FUZZ_EXAMPLES``."""
    return ci if PROFILE == "ci" else FUZZ_EXAMPLES
