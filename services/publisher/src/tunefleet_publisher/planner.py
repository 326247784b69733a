"""The planner's decisions for one study request: which trials the revision has, and which of
them go to the workers. The only place a spec becomes trials (through `strategies`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tunefleet_contract.messages import StudyRequest, TrialMessage, TrialSpec
from tunefleet_runtime.records import PlannedTrial, ResultState
from tunefleet_runtime.validation import resolved_task

from tunefleet_publisher.strategies import AdaptiveStrategy, outcome_of, strategies_for
from tunefleet_publisher.trials import family_chunks

__all__ = ["Plan", "StoredResults", "decide", "plan", "trial_messages"]

# Trial id -> how it ended, for every result the study has stored (of any revision).
StoredResults = Mapping[str, ResultState]


@dataclass(frozen=True)
class Plan:
    request: StudyRequest
    trials: list[TrialSpec]  # the revision's trial set so far, in planning order
    publish: list[TrialSpec]  # of those, what the workers get
    kept_failed: int = 0  # kept trials whose result is a failure (not rerun)
    superseded: int = 0  # results of the revision before that this one no longer has
    adaptive: list[AdaptiveStrategy] = field(default_factory=list)  # deciding as results come

    @property
    def kept(self) -> int:
        return len(self.trials) - len(self.publish)

    @property
    def n_trials(self) -> int:
        """Trials the revision will have: those planned, and those its adaptive searches
        have still to decide."""
        undecided = sum(s.search.n_trials - len(s.decided) for s in self.adaptive)
        return len(self.trials) + undecided

    def messages(self) -> list[TrialMessage]:
        return trial_messages(self.request, self.publish)


def trial_messages(request: StudyRequest, trials: Iterable[TrialSpec]) -> list[TrialMessage]:
    """The trial messages of `trials`, `chunk_size` trials each, families kept whole."""
    spec = request.spec
    task = resolved_task(spec)
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
        )
        # A family (trials differing only in their rounds) stays in one message.
        for chunk in family_chunks(trials, spec.chunk_size)
    ]


def decide(
    request: StudyRequest, stored: StoredResults, recorded: Sequence[PlannedTrial] = ()
) -> tuple[list[TrialSpec], list[AdaptiveStrategy]]:
    """The revision's trial set so far, and its adaptive searches with their state.

    Grid and random trials follow from the spec. An adaptive search is restored from what was
    `recorded` of its library (the store's plan, not made by the library's grid or random
    search) and the stored results, then decides what it can now (up to `max_in_flight`
    without a result)."""
    rerun = request.rerun_failed
    outcomes = {
        tid: outcome_of(state.status, state.score)
        for tid, state in stored.items()
        if state.status == "done" or not rerun
    }
    trials: list[TrialSpec] = []
    upfront: set[str] = set()
    adaptive: list[AdaptiveStrategy] = []
    for strategy in strategies_for(request.spec, request.study_id):
        if isinstance(strategy, AdaptiveStrategy):
            strategy.restore(
                [
                    TrialSpec(trial_id=r.trial_id, library=r.library, params=dict(r.params))
                    for r in recorded
                    if r.library == strategy.library and r.trial_id not in upfront
                ],
                outcomes,
            )
            adaptive.append(strategy)
            trials.extend(strategy.initial())
        else:
            found = list(strategy.initial())
            upfront.update(t.trial_id for t in found)
            trials.extend(found)
    return trials, adaptive


def plan(
    request: StudyRequest,
    stored: StoredResults,
    current_revision: int,
    recorded: Sequence[PlannedTrial] = (),
) -> Plan:
    """Decide a request's trials. A first submission (revision 0) publishes them all; a resume
    publishes those without a result (and failed ones with `rerun_failed`): `stored` is what
    the store holds, `current_revision` the study's revision before this one, `recorded` the
    trials planned before (what adaptive searches decided)."""
    trials, adaptive = decide(request, stored, recorded)
    if request.revision == 0:
        return Plan(request, trials, trials, adaptive=adaptive)
    rerun = request.rerun_failed
    publish = [
        t
        for t in trials
        if t.trial_id not in stored or (rerun and stored[t.trial_id].status == "failed")
    ]
    wanted = {t.trial_id for t in trials}
    kept_failed = (
        0 if rerun else sum(1 for tid in wanted if tid in stored and stored[tid].status == "failed")
    )
    superseded = sum(
        1
        for tid, state in stored.items()
        if state.revision == current_revision and tid not in wanted
    )
    return Plan(request, trials, publish, kept_failed, superseded, adaptive)
