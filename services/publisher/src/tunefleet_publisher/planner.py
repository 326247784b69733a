"""The planner's decisions for one study request: which trials the revision has, and which of
them go to the workers. The only place a spec becomes trials (through `strategies`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tunefleet_contract.messages import StudyRequest, TrialMessage, TrialSpec
from tunefleet_runtime.validation import resolved_task

from tunefleet_publisher.strategies import expand
from tunefleet_publisher.trials import family_chunks

__all__ = ["Plan", "StoredResults", "plan"]

# Trial id -> (status, revision) of every result the study has stored.
StoredResults = Mapping[str, tuple[str, int]]


@dataclass(frozen=True)
class Plan:
    request: StudyRequest
    trials: list[TrialSpec]  # the revision's whole trial set, in planning order
    publish: list[TrialSpec]  # of those, what the workers get
    kept_failed: int = 0  # kept trials whose result is a failure (not rerun)
    superseded: int = 0  # results of the revision before that this one no longer has

    @property
    def kept(self) -> int:
        return len(self.trials) - len(self.publish)

    def messages(self) -> list[TrialMessage]:
        """The trial messages to publish, `chunk_size` trials each, families kept whole."""
        spec = self.request.spec
        task = resolved_task(spec)
        return [
            TrialMessage(
                study_id=self.request.study_id,
                dataset=spec.dataset,
                task=task,
                metric=spec.resolved_metric(task) if task else spec.metric,
                folds=spec.cv.folds,
                seed=spec.cv.seed,
                trials=chunk,
                revision=self.request.revision,
            )
            # A family (trials differing only in their rounds) stays in one message.
            for chunk in family_chunks(self.publish, spec.chunk_size)
        ]


def plan(request: StudyRequest, stored: StoredResults, current_revision: int) -> Plan:
    """Decide a request's trials. A first submission (revision 0) publishes them all; a resume
    publishes those without a result (and failed ones with `rerun_failed`): `stored` is what
    the store holds, `current_revision` the study's revision before this one."""
    trials = list(expand(request.spec, request.study_id))
    if request.revision == 0:
        return Plan(request, trials, trials)
    rerun = request.rerun_failed
    publish = [
        t
        for t in trials
        if t.trial_id not in stored or (rerun and stored[t.trial_id][0] == "failed")
    ]
    wanted = {t.trial_id for t in trials}
    kept_failed = 0 if rerun else sum(1 for tid in wanted if stored.get(tid, ("",))[0] == "failed")
    superseded = sum(
        1
        for tid, (_, revision) in stored.items()
        if revision == current_revision and tid not in wanted
    )
    return Plan(request, trials, publish, kept_failed, superseded)
