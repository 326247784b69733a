"""A model that trains nothing: measures the pipeline's own cost, and gives fault-injection
tests trials of a chosen length and outcome (`score`, `sleep_s`, `fail`)."""

from __future__ import annotations

from tunefleet_contract.rules import (
    LibraryCatalogue,
    ParamRule,
    float_rule,
    int_rule,
)

CATALOGUE = LibraryCatalogue(
    name="noop",
    thread_param="n_jobs",
    platform=frozenset(),
    params={
        "score": float_rule(-1e12, 1e12),
        "sleep_s": float_rule(0.0, 86_400.0),
        "fail": ParamRule(bool),
        "n_jobs": int_rule(1),
        "x": float_rule(nullable=True),
    },
)
