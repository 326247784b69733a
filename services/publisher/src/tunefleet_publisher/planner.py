"""The planner's decisions for one study request: which trials the revision has, and which of
them go to the workers. The only place a spec becomes trials, through the searches of
`tunefleet_contract.search`; each planned trial records the search that decided it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from tunefleet_contract.messages import PlannedSpec, StudyRequest, TrialMessage, TrialSpec
from tunefleet_contract.search import Decision, Recorded, outcome_of
from tunefleet_contract.search.plan import Searches
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import ResultState, reruns
from tunefleet_runtime.validation import resolved_task, scoring_key

from tunefleet_publisher.chunks import family_chunks

__all__ = [
    "Plan",
    "StoredResults",
    "decide",
    "expand",
    "plan",
    "planned",
    "searches_for",
    "trial_messages",
]

# Trial id -> how it ended, for every result the study has stored (of any revision).
StoredResults = Mapping[str, ResultState]


def searches_for(spec: StudySpec, study_id: str) -> Searches:
    """The study's searches: per library, in the spec's order, its grid and then each of its
    searches by precedence (a point two could decide is the first one's)."""
    return Searches(spec.search, study_id, scoring_key(spec), spec.cv.seed)


def planned(decision: Decision) -> PlannedSpec:
    """A decision as the plan records it and a trial message carries it."""
    if decision.rung is None:  # left unset: a plan holds tens of thousands of these
        return PlannedSpec(
            trial_id=decision.trial_id,
            library=decision.library,
            params=decision.params,
            search=decision.search,
        )
    return PlannedSpec(
        trial_id=decision.trial_id,
        library=decision.library,
        params=decision.params,
        search=decision.search,
        rung=decision.rung,
    )


def expand(spec: StudySpec, study_id: str) -> Iterator[PlannedSpec]:
    """Every trial a study decides before any result, lazily, in planning order."""
    return map(planned, searches_for(spec, study_id).initial())


@dataclass(frozen=True)
class Plan:
    request: StudyRequest
    trials: list[PlannedSpec]  # the revision's trial set so far, in planning order
    publish: list[PlannedSpec]  # of those, what the workers get
    searches: Searches  # the study's searches (the reactive ones decide as results come)
    kept_failed: int = 0  # kept trials whose result is a failure (not rerun)
    superseded: int = 0  # results of the revision before that this one no longer has

    @property
    def adaptive(self) -> bool:
        """Whether some of its searches decide as results arrive."""
        return bool(self.searches.reactive)

    @property
    def kept(self) -> int:
        return len(self.trials) - len(self.publish)

    @property
    def n_trials(self) -> int:
        """Trials the revision will have: those planned, and those its adaptive searches
        have still to decide."""
        return len(self.trials) + self.searches.undecided

    def messages(self) -> list[TrialMessage]:
        return trial_messages(self.request, self.publish)


def trial_messages(request: StudyRequest, trials: Iterable[TrialSpec]) -> list[TrialMessage]:
    """The trial messages of `trials`, `chunk_size` trials each, families kept whole."""
    spec = request.spec
    task = resolved_task(spec)
    stopping = {
        library: part.early_stopping
        for library, part in spec.search.items()
        if part.early_stopping is not None
    }
    return [
        TrialMessage(
            study_id=request.study_id,
            dataset=spec.dataset,
            task=task,
            metric=spec.resolved_metric(task) if task else spec.metric,
            folds=spec.cv.folds,
            seed=spec.cv.seed,
            trials=chunk,
            revision=request.revision,
            early_stopping=stopping,
            checkpoint=spec.checkpoint,
        )
        # A family (trials differing only in their rounds) stays in one message.
        for chunk in family_chunks(trials, spec.chunk_size)
    ]


def decide(
    request: StudyRequest, stored: StoredResults, recorded: Sequence[Recorded] = ()
) -> tuple[list[PlannedSpec], Searches]:
    """The revision's trial set so far, and its searches with their state.

    Grid and random trials follow from the spec. An adaptive search is restored from what was
    `recorded` of its library (the store's plan) and the stored results, then decides what it
    can now (up to `max_in_flight` without a result)."""
    rerun = request.rerun_failed
    outcomes = {
        tid: outcome_of(state.status, state.score)
        for tid, state in stored.items()
        if state.status == "done" or not rerun
    }
    searches = searches_for(request.spec, request.study_id)
    return [planned(d) for d in searches.decide(recorded, outcomes)], searches


def plan(
    request: StudyRequest,
    stored: StoredResults,
    current_revision: int,
    recorded: Sequence[Recorded] = (),
) -> Plan:
    """Decide a request's trials. A first submission (revision 0) publishes them all; a resume
    publishes those without a result (and failed ones with `rerun_failed`): `stored` is what
    the store holds, `current_revision` the study's revision before this one, `recorded` the
    trials planned before (what adaptive searches decided)."""
    trials, searches = decide(request, stored, recorded)
    if request.revision == 0:
        return Plan(request, trials, trials, searches)
    counts = reruns([t.trial_id for t in trials], stored, rerun_failed=request.rerun_failed)
    publish = [t for t in trials if t.trial_id in counts.publish]
    wanted = {t.trial_id for t in trials}
    superseded = sum(
        1
        for tid, state in stored.items()
        if state.revision == current_revision and tid not in wanted
    )
    return Plan(request, trials, publish, searches, counts.kept_failed, superseded)
