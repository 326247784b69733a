"""Search: the one home of how a study's trials are decided, and of how they are read back.

Pure: it imports no broker and no store (import-linter checks it), so the planner, the client
and the report use the same code.

- `distributions`: one class per kind of distribution a space draws from;
- `space`: `SearchSpec`, what every sampled search's section of a spec has;
- `strategy`: `Strategy` (one constructor shape: its section and a `SearchContext`),
  `Decision` (what the plan records: the trial, its search, its rung), `SearchKind`;
- `grid`, `adaptive`: the grid, and the base of searches that decide as results arrive;
- `kinds`: one module per search kind (random, sobol, tpe, asha), found like model libraries;
- `plan`: a study's searches driven together (`Searches`);
- `views`: which search decided each trial (the plan's record), and each library's tally;
- `history`: an adaptive search's best so far, rungs and ladders, for the report and the CLI.
"""

from __future__ import annotations

from tunefleet_contract.search.distributions import (
    BaseDistribution,
    Choice,
    Distribution,
    IntRange,
    LogUniform,
    Uniform,
)
from tunefleet_contract.search.ids import configuration, grid_points, trial_id
from tunefleet_contract.search.kinds import search_kinds
from tunefleet_contract.search.space import HARD_LIMIT, AdaptiveSpec, SearchSpec, sample_space
from tunefleet_contract.search.strategy import (
    Decision,
    Outcome,
    Recorded,
    SearchContext,
    SearchKind,
    Strategy,
    outcome_of,
)

__all__ = [
    "HARD_LIMIT",
    "AdaptiveSpec",
    "BaseDistribution",
    "Choice",
    "Decision",
    "Distribution",
    "IntRange",
    "LogUniform",
    "Outcome",
    "Recorded",
    "SearchContext",
    "SearchKind",
    "SearchSpec",
    "Strategy",
    "Uniform",
    "configuration",
    "grid_points",
    "outcome_of",
    "sample_space",
    "search_kinds",
    "trial_id",
]
