"""Random search: the first `n_trials` distinct seeded draws from the library's space."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from tunefleet_contract import spec as schema
from tunefleet_contract.messages import TrialResult, TrialSpec
from tunefleet_contract.params import ParamError, Scalar, check_param

from tunefleet_publisher.trials import sample_space, trial_id

# Draws per wanted trial before a random search gives up finding new distinct points (a small
# discrete space, or conditions that make most combinations impossible).
_DRAWS_PER_TRIAL = 50


class RandomSearch:
    """Decides all of its trials up front, skipping ids in `seen` (the grid's, and its own
    repeats). The draws depend only on the seed, the library's name and its space: adding a
    library to a study does not change another library's trials, and raising `n_trials`
    keeps the points already drawn."""

    reactive = False
    kind = "random"

    def __init__(
        self,
        study_id: str,
        scoring: str,
        library: str,
        part: schema.LibrarySearch,
        search: schema.RandomSearch,
        spec: schema.StudySpec,
        seen: set[str],
    ) -> None:
        self.study_id = study_id
        self.scoring = scoring
        self.library = library
        self.part = part
        self.search = search
        self.seed = search.seed if search.seed is not None else spec.cv.seed
        self.seen = seen

    def _checked(self, point: dict[str, Scalar]) -> dict[str, Scalar]:
        # The spec's bounds were checked against the catalogue; this checks what was drawn.
        for name, value in point.items():
            try:
                check_param(self.library, name, value)
            except ParamError as exc:
                raise schema.SpecError(
                    f"search.{self.library}.{self.kind} drew an invalid value: {exc}"
                ) from None
        return point

    def _points(self) -> Iterator[dict[str, Scalar]]:
        for point in sample_space(self.search, self.part.fixed, self.seed, self.library):
            yield self._checked(point)

    def initial(self) -> Iterator[TrialSpec]:
        wanted = self.search.n_trials
        budget = wanted * _DRAWS_PER_TRIAL + 1000
        found = 0
        for params in self._points():
            budget -= 1
            if budget < 0:
                break
            tid = trial_id(self.study_id, self.library, params, self.scoring)
            if tid in self.seen:
                continue
            self.seen.add(tid)
            found += 1
            yield TrialSpec(trial_id=tid, library=self.library, params=params)
            if found == wanted:
                break

    def react(self, result: TrialResult) -> list[TrialSpec]:
        return []

    def restore(self, planned: Sequence[TrialSpec], outcomes: Mapping[str, float | None]) -> None:
        return None
