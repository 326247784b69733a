"""Grid search: every point of the library's grids (scikit-learn's ParameterGrid order)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from tunefleet_contract.messages import TrialResult, TrialSpec
from tunefleet_contract.spec import LibrarySearch

from tunefleet_publisher.trials import grid_points, trial_id


class GridSearch:
    """Decides all of its trials up front; `seen` collects their ids for the library's random
    search, which must not draw one of them again."""

    reactive = False

    def __init__(
        self, study_id: str, scoring: str, library: str, part: LibrarySearch, seen: set[str]
    ) -> None:
        self.study_id = study_id
        self.scoring = scoring
        self.library = library
        self.part = part
        self.seen = seen

    def initial(self) -> Iterator[TrialSpec]:
        for grid in self.part.grids():
            for point in grid_points(grid):
                params = {**self.part.fixed, **point}
                tid = trial_id(self.study_id, self.library, params, self.scoring)
                # A list of grids may name the same point twice; it is one trial.
                if tid in self.seen:
                    continue
                self.seen.add(tid)
                yield TrialSpec(trial_id=tid, library=self.library, params=params)

    def react(self, result: TrialResult) -> list[TrialSpec]:
        return []

    def restore(self, planned: Sequence[TrialSpec], outcomes: Mapping[str, float | None]) -> None:
        return None
