"""Grid search: every point of a library's grids, in scikit-learn's ParameterGrid order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.ids import grid_points
from tunefleet_contract.search.strategy import Decision, Strategy

__all__ = ["GRID", "GridStrategy", "Grids"]

# The library's grids that contribute trials (`LibrarySearch.grids()`).
Grids = Sequence[Mapping[str, Sequence[Scalar]]]
GRID = "grid"


class GridStrategy(Strategy[Grids]):
    """Decides all of its trials up front, each grid point with the fixed parameters; the
    library's grid comes before every other search (a point it has is its trial)."""

    @property
    def key(self) -> str:
        return GRID

    def initial(self) -> Iterator[Decision]:
        for grid in self.spec:
            for point in grid_points(grid):
                found = self.context.decision({**self.context.fixed, **point}, GRID)
                # A list of grids may name the same point twice; it is one trial.
                if found.trial_id not in self.context.taken:
                    yield found
