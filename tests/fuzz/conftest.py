"""Hypothesis profiles: `make test` runs a bounded number of examples per property (thousands
in all); `make fuzz` (HYPOTHESIS_PROFILE=long) runs many more."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # a loaded CI machine must not turn slowness into a failure
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "derandomize": False,
    "print_blob": True,
}
settings.register_profile("default", max_examples=400, **_COMMON)
settings.register_profile("long", max_examples=4_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
# For properties whose every example is slow (a CLI process' worth, a parser at its limit).
FEW = settings(max_examples=max(1, settings().max_examples // 8))
