"""A store in memory, for unit tests of what reads the store (the client, status, progress):
the `Store` protocol over plain dictionaries, filled with `put_*`. Its `write_events` keeps the
first result of a trial, like the real one before any merge; the merge and revision rules are
MongoStore's, tested against a real server."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from tunefleet_contract.messages import (
    Event,
    ModelStored,
    TrialResult,
    TrialsPlanned,
    TrialsStarted,
)
from tunefleet_runtime.records import (
    PlannedTrial,
    ResultState,
    StudyRecord,
    TrialDetail,
    TrialRecord,
    TrialStart,
)
from tunefleet_runtime.store import Store, check_prefix, trial_detail

__all__ = ["MemoryStore"]


@dataclass
class MemoryStore:
    studies_by_id: dict[str, StudyRecord] = field(default_factory=dict)
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    started: list[TrialStart] = field(default_factory=list)
    start_study: dict[str, str] = field(default_factory=dict)  # trial id -> study id
    planned: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    decisions: dict[str, dict[str, PlannedTrial]] = field(default_factory=dict)  # by study
    stored_models: list[ModelStored] = field(default_factory=list)  # oldest first

    def put_study(self, record: StudyRecord) -> None:
        self.studies_by_id[record.study_id] = record

    def write_events(self, events: Iterable[Event]) -> dict[str, int]:
        counts = {"trials": 0, "starts": 0, "planned": 0}
        for event in events:
            if isinstance(event, TrialResult):
                if event.trial_id not in self.trials:
                    fields = event.model_dump(exclude={"schema_version"})
                    self.trials[event.trial_id] = TrialRecord(**fields)
                    counts["trials"] += 1
            elif isinstance(event, TrialsStarted):
                for tid in event.trial_ids:
                    self.started.append(
                        TrialStart(
                            tid, event.attempt, event.worker, event.started_at, event.revision
                        )
                    )
                    self.start_study[tid] = event.study_id
                    counts["starts"] += 1
            elif isinstance(event, TrialsPlanned):
                plan = self.planned.setdefault((event.study_id, event.revision), [])
                plan.extend(t.trial_id for t in event.trials if t.trial_id not in plan)
                decided = self.decisions.setdefault(event.study_id, {})
                for t in event.trials:
                    known = decided.get(t.trial_id)
                    decided[t.trial_id] = PlannedTrial(
                        t.trial_id,
                        t.library,
                        t.params,
                        max(event.revision, known.revision if known else 0),
                        known.after if known else event.after,
                        known.search if known else t.search,
                        known.rung if known else t.rung,
                    )
                counts["planned"] += len(event.trials)
            elif isinstance(event, ModelStored):
                self.stored_models.append(event)
            else:
                raise NotImplementedError(f"MemoryStore: put_study for {event.kind}")
        return counts

    def study(self, study_id: str) -> StudyRecord | None:
        return self.studies_by_id.get(study_id)

    def studies(self, limit: int = 50) -> list[StudyRecord]:
        ordered = sorted(self.studies_by_id.values(), key=lambda s: -s.submitted_at)
        return ordered[:limit]

    def results(self, study_id: str, revision: int) -> list[TrialRecord]:
        found = [
            t for t in self.trials.values() if t.study_id == study_id and t.revision == revision
        ]
        return sorted(found, key=lambda t: (t.score is None, -(t.score or 0.0)))

    def starts(self, study_id: str, revision: int) -> list[TrialStart]:
        return [
            s
            for s in self.started
            if self.start_study[s.trial_id] == study_id and s.revision == revision
        ]

    def leaderboard(
        self, study_id: str, revision: int, *, limit: int, library: str | None = None
    ) -> list[TrialRecord]:
        done = [
            t
            for t in self.results(study_id, revision)
            if t.status == "done" and t.score is not None and library in (None, t.library)
        ]
        return done[:limit]

    def finished_since(
        self, study_id: str, revision: int, since: float
    ) -> tuple[int, float | None]:
        finished = [t.finished_at for t in self.results(study_id, revision)]
        return sum(1 for t in finished if t > since), min(finished, default=None)

    def planned_trials(self, study_id: str, revision: int) -> list[str]:
        return list(self.planned.get((study_id, revision), []))

    def result_states(self, study_id: str) -> dict[str, ResultState]:
        return {
            t.trial_id: ResultState(t.status, t.revision, t.score)
            for t in self.trials.values()
            if t.study_id == study_id
        }

    def plan(self, study_id: str, trial_ids: Collection[str] | None = None) -> list[PlannedTrial]:
        decided = self.decisions.get(study_id, {}).values()
        return [t for t in decided if trial_ids is None or t.trial_id in trial_ids]

    def trial(self, trial_id: str) -> TrialDetail | None:
        check_prefix(trial_id)
        known = set(self.trials) | set(self.start_study)
        ids = {tid for tid in known if tid.startswith(trial_id)}
        if len(ids) > 1:
            raise ValueError(f"{trial_id} is the start of several trial ids")
        if not ids:
            return None
        tid = ids.pop()
        result = self.trials.get(tid)
        study_id = result.study_id if result else self.start_study[tid]
        study = self.studies_by_id.get(study_id)
        starts = sorted(
            (s for s in self.started if s.trial_id == tid), key=lambda s: (s.revision, s.attempt)
        )
        return trial_detail(tid, result, starts, study_id, study.revision if study else None)

    def models(self, study_id: str, trial_id: str | None = None) -> list[ModelStored]:
        return [
            m
            for m in reversed(self.stored_models)
            if m.study_id == study_id and trial_id in (None, m.trial_id)
        ]

    def studies_using(self, sha256: str) -> list[str]:
        return sorted(
            s.study_id
            for s in self.studies_by_id.values()
            if getattr(s.spec.dataset, "sha256", None) == sha256
        )


def _implements_the_protocol(store: MemoryStore) -> Store:
    return store  # mypy checks that MemoryStore is a Store
