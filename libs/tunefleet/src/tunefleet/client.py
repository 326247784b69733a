"""The Python API: submitting studies and reading their results (the CLI is built on it).

    client = Client()                      # RABBITMQ_URL, MONGODB_URL from the environment
    study = client.submit("spec.yaml")     # a Study (also the study id, as a str)
    study.wait(progress=True)              # live, from the broker's event stream
    study.results()                        # pandas DataFrame, one row per trial
    study.best(5, by_library=True)

The client writes only through the broker (requests, cancels, resumes, refits) and the blob
store (uploaded data); it reads the store, through `tunefleet_runtime.store.Store`. People's
views of it are elsewhere: `tunefleet.display` (progress, one-line descriptions),
`tunefleet.frames` (tables), `tunefleet.cli`, `tunefleet.report`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunefleet_contract.cost import PriceTable
from tunefleet_contract.messages import (
    ModelRefit,
    ModelStored,
    StudyCancelled,
    StudyRequest,
)
from tunefleet_contract.search.views import Decisions
from tunefleet_contract.spec import SpecError, StudySpec
from tunefleet_runtime.blobs import BlobInfo, BlobStore
from tunefleet_runtime.broker import connect, publish, topology_of
from tunefleet_runtime.records import (
    PlannedTrial,
    StudyRecord,
    StudyState,
    StudyStatus,
    TrialDetail,
    TrialRecord,
    reruns,
)
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import Store, open_blobs, open_store, study_status
from tunefleet_runtime.validation import load_spec, parse_spec, resolved_task, validate_spec

from tunefleet import frames, models, upload
from tunefleet.cost import Ledger, ledger, prices_for, wasted_core_seconds, wasted_seconds
from tunefleet.progress import Progress, from_store, watch
from tunefleet.resume import Resumption, requested_by, resume
from tunefleet.study import Study

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Client", "DatasetInUseError", "Resumption", "Study", "StudyNotFoundError"]

SpecLike = StudySpec | Mapping[str, Any] | str | Path


class DatasetInUseError(ValueError):
    """A dataset that a study uses cannot be deleted."""


class StudyNotFoundError(LookupError):
    """No study with this id has been registered (yet)."""


class Client:
    """`store`, `blobs`: where to read from and upload to (by default the store the settings
    name: `open_store`, `open_blobs`)."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        store: Store | None = None,
        blobs: BlobStore | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or ClientSettings(**overrides)
        self.store: Store = store or open_store(self.settings)
        if blobs is not None:
            self.blobs = blobs

    @staticmethod
    def spec(spec: SpecLike) -> StudySpec:
        """Validate a spec given as a model, a mapping or a path to a YAML/JSON file."""
        if isinstance(spec, StudySpec):
            return validate_spec(spec)
        if isinstance(spec, str | Path):
            return load_spec(spec)
        return parse_spec(spec)

    # -- writing, through the broker ---------------------------------------------------------

    def publish(self, exchange: Callable[[Any], str], routing_key: str, body: bytes) -> None:
        """Publish one message (confirmed by the broker) to the exchange `exchange` picks."""
        connection, channel = connect(self.settings, retry_for_s=10)
        try:
            publish(channel, exchange(topology_of(self.settings)), routing_key, body)
        finally:
            connection.close()

    @functools.cached_property
    def blobs(self) -> BlobStore:
        """Uploaded datasets and stored models (`tunefleet_runtime.blobs`): bytes, read and
        written directly (never through the broker)."""
        settings = self.settings
        return open_blobs(
            str(settings.mongodb_url),
            settings.mongodb_database,
            settings.tunefleet_max_dataset_bytes,
            timeout_s=settings.tunefleet_store_timeout_s,
        )

    def publishable(self, spec: SpecLike, data: pd.DataFrame | None = None) -> StudySpec:
        """The spec as it is published: validated, and its data uploaded (`tunefleet.upload`):
        a local CSV/Parquet path or `data` becomes the content's hash."""
        study = self.with_prices(self.spec(spec))
        base = Path(spec).parent if isinstance(spec, str | Path) else None
        return upload.resolve(study, self.blobs, data, base)

    def with_prices(self, spec: StudySpec) -> StudySpec:
        """A spec whose budget is money, with the prices it is counted at: its own, or this
        client's TUNEFLEET_PRICES (recorded in the spec, so that the planner counts with the
        prices the submitter saw); SpecError where there are none."""
        budget = spec.budget
        if budget is None or budget.cost is None or budget.prices is not None:
            return spec
        if self.settings.tunefleet_prices is None:
            raise SpecError(budget.problem() or "budget.cost needs a price table")
        priced = budget.model_copy(update={"prices": self.settings.tunefleet_prices})
        return spec.model_copy(update={"budget": priced})

    def submit(self, spec: SpecLike, *, data: pd.DataFrame | None = None) -> Study:
        """Publish the study request (confirmed by the broker); returns the study. The planner
        decides its trials.

        `data`: a DataFrame to tune on, for a spec whose dataset is `{kind: upload, target}`;
        it is uploaded once (as Parquet) and the spec records its SHA-256."""
        study = self.publishable(spec, data)
        study_id = study.study_id()
        request = StudyRequest(study_id=study_id, spec=study, submitted_at=time.time())
        self.publish(lambda t: t.studies_exchange, "study", request.encode())
        return Study(study_id, self, study)

    def cancel(self, study_id: str, *, reason: str | None = None) -> None:
        """Cancel: the collector records it; workers skip the study's trials still queued
        (they stay without a result, so `resume` runs them)."""
        self.study_record(study_id)
        event = StudyCancelled(
            study_id=study_id, cancelled_at=time.time(), by=requested_by(), reason=reason
        )
        self.publish(lambda t: t.events_exchange, event.kind, event.encode())
        self.recorded(study_id, lambda study: study.cancelled)

    def registered(self, study_id: str, *, timeout_s: float = 10.0) -> StudyRecord | None:
        """The study as the planner registered it (with its exact number of trials: a spec's
        `n_trials()` counts a point named by two grids twice), waiting up to `timeout_s` for
        it; None if it is not registered by then."""
        return self.recorded(study_id, lambda _study: True, timeout_s=timeout_s)

    def recorded(
        self, study_id: str, check: Callable[[StudyRecord], bool], *, timeout_s: float = 15.0
    ) -> StudyRecord | None:
        """Wait (briefly) until the collector has stored a cancel or resume, so that what the
        user runs next (`status`, `wait`) sees it; the broker already holds it either way.
        The study once it passes `check`, else None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            study = self.store.study(study_id)
            if study is not None and check(study):
                return study
            time.sleep(0.1)
        return None

    def missing_trials(self, study_id: str) -> list[str]:
        """The study's trials that have no result, in the order the planner decided them."""
        study = self.study_record(study_id)
        planned = self.store.planned_trials(study.study_id, study.revision)
        stored = self.store.result_states(study.study_id)
        return list(reruns(planned, stored, rerun_failed=False).publish)

    def resume(
        self, study_id: str, spec: SpecLike | None = None, *, rerun_failed: bool = False
    ) -> Resumption:
        """Run what is missing: the trials without a result (crashed, lost, cancelled), and
        with `rerun_failed` the failed ones too. Lifts a cancel. `spec`: a fixed spec for the
        same study (same name). See `tunefleet.resume`."""
        return resume(self, study_id, spec, rerun_failed=rerun_failed)

    # -- refits and models ---------------------------------------------------------------------

    def _trial_to_refit(self, study_id: str, trial_id: str | None) -> TrialRecord:
        if trial_id is None:
            best = self.best(study_id, n=1)
            if not best:
                raise LookupError(f"study {study_id} has no done trial to refit")
            return best[0]
        detail = self.trial(trial_id)
        if detail is None or detail.study_id != str(study_id):
            raise LookupError(f"no trial {trial_id} in study {study_id}")
        if detail.result is None or detail.status != "done":
            raise LookupError(f"trial {detail.trial_id} is {detail.status}; refit a done trial")
        return detail.result

    def refit(self, study_id: str, trial_id: str | None = None) -> str:
        """Publish a refit of the trial (the best by default); returns its trial id."""
        spec = self.stored_spec(study_id)
        trial = self._trial_to_refit(study_id, trial_id)
        task = trial.task if trial.task in ("classification", "regression") else None
        message = ModelRefit(
            study_id=str(study_id),
            trial_id=trial.trial_id,
            library=trial.library,
            params=dict(trial.params),
            dataset=spec.dataset,
            task=task or resolved_task(spec),
            requested_at=time.time(),
            by=requested_by(),
            best_round=trial.best_round,
        )
        # On the trials queue: a worker takes it as it takes trials, one at a time, and it is
        # redelivered like them if the worker dies before the model is stored.
        self.publish(lambda t: t.trials_exchange, "trial", message.encode())
        return trial.trial_id

    def model(self, study_id: str, trial_id: str | None = None) -> ModelStored | None:
        """The stored model of the trial (a unique prefix will do), or of the best trial; None
        before its refit ends."""
        if trial_id is None:
            best = self.best(study_id, n=1)
            if not best:
                return None
            trial_id = best[0].trial_id
        elif len(trial_id) < 24:
            detail = self.trial(trial_id)
            if detail is None:
                raise LookupError(f"no trial {trial_id}")
            trial_id = detail.trial_id
        found = self.store.models(str(study_id), trial_id)
        return found[0] if found else None

    def models(self, study_id: str) -> list[ModelStored]:
        """Every refit of the study that ended (stored or failed), newest first."""
        return self.store.models(str(study_id))

    def wait_model(
        self, study_id: str, trial_id: str, *, timeout_s: float = 600, poll_s: float = 0.5
    ) -> ModelStored:
        """Wait for a refit to end; a failed one raises with the worker's error."""
        deadline = time.monotonic() + timeout_s
        while True:
            model = self.model(study_id, trial_id)
            if model is not None:
                if model.status != "done":
                    raise RuntimeError(f"refit of trial {trial_id} failed: {model.error}")
                return model
            if time.monotonic() > deadline:
                raise TimeoutError(f"no model of trial {trial_id} within {timeout_s} s")
            time.sleep(poll_s)

    def model_bytes(self, model: ModelStored) -> bytes:
        if model.sha256 is None:
            raise LookupError(f"trial {model.trial_id}: no stored model")
        return self.blobs.read_bytes(model.sha256)

    def best_model(self, study_id: str, *, timeout_s: float = 600) -> Any:
        model = self.model(study_id)
        if model is None or model.status != "done":
            trial_id = self.refit(study_id)
            model = self.wait_model(study_id, trial_id, timeout_s=timeout_s)
        return models.load_estimator(model, self.model_bytes(model))

    # -- datasets ----------------------------------------------------------------------------

    def datasets(self) -> list[tuple[BlobInfo, list[str]]]:
        """Every uploaded dataset, newest first, with the ids of the studies that use it."""
        blobs = self.blobs.list("dataset")
        return [(info, self.store.studies_using(info.sha256)) for info in blobs]

    def delete_dataset(self, sha256: str) -> BlobInfo:
        """Delete an uploaded dataset that no study uses (a unique prefix of its hash will do);
        one that a study uses is refused: its workers, a resume or a refit still need it."""
        matches = [i for i in self.blobs.list("dataset") if i.sha256.startswith(sha256.lower())]
        if len(sha256) < 8 or len(matches) != 1:
            what = "no" if not matches else "several"
            raise LookupError(f"{what} stored dataset matches {sha256!r} (give 8+ hex digits)")
        info = matches[0]
        users = self.store.studies_using(info.sha256)
        if users:
            raise DatasetInUseError(
                f"dataset {info.sha256[:12]} is used by {len(users)} "
                f"stud{'y' if len(users) == 1 else 'ies'} ({', '.join(users[:5])}); "
                "it stays stored"
            )
        self.blobs.delete(info.sha256)
        return info

    def prune_models(self, older_than_s: float = 3600) -> list[BlobInfo]:
        """Delete the model blobs that no stored model names (replaced by a refit on a new
        library version or new data, or stored by a refit whose worker died before it was
        recorded); one younger than `older_than_s` is spared, as its refit may still be about
        to be recorded. Returns what was deleted."""
        named = self.store.model_blobs()
        cutoff = time.time() - older_than_s
        unused = [
            info
            for info in self.blobs.list("model")
            if info.sha256 not in named and info.created_at < cutoff
        ]
        return [info for info in unused if self.blobs.delete(info.sha256)]

    # -- reading, from the store -------------------------------------------------------------

    def study(self, study_id: str) -> Study:
        self.study_record(study_id)
        return Study(study_id, self)

    def study_record(self, study_id: str) -> StudyRecord:
        """The registered study (StudyNotFoundError if it is not registered)."""
        study = self.store.study(str(study_id))
        if study is None:
            raise StudyNotFoundError(f"no study {str(study_id)!r}")
        return study

    def stored_spec(self, study_id: str) -> StudySpec:
        return self.study_record(study_id).spec

    def status(self, study_id: str) -> StudyStatus | None:
        return study_status(self.store, str(study_id))

    def snapshot(self, study_id: str) -> Progress:
        """Where the study stands, read once from the store (throughput over 5 minutes)."""
        return from_store(self.store, str(study_id))

    def progress(self, study_id: str, **kwargs: Any) -> Iterator[Progress]:
        """Live snapshots from the event stream (see `tunefleet.progress.watch`)."""
        return watch(self.settings, self.store, str(study_id), **kwargs)

    def wait(
        self,
        study_id: str,
        *,
        timeout_s: float | None = None,
        on_progress: Callable[[Progress], object] | None = None,
        tick_s: float = 1.0,
        revision: int = 0,
    ) -> StudyStatus:
        """Block until every trial of the study has a stored result, or it is cancelled.

        Driven by the event stream; raises TimeoutError after `timeout_s`. `revision`: the one
        a resume made, so that the revision before it, complete, does not end the wait.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def over(p: Progress) -> bool:
            if deadline is not None and time.monotonic() > deadline:
                return True
            # A cancelled study ends here: its skipped trials will never get a result.
            return p.complete or p.cancelled

        last: Progress | None = None
        for snapshot in self.progress(study_id, tick_s=tick_s, until=over, revision=revision):
            last = snapshot
            if on_progress is not None:
                on_progress(snapshot)
        status = self.status(study_id)
        if last is None or status is None or not (last.complete or last.cancelled):
            raise TimeoutError(f"study {study_id} did not finish within {timeout_s} s")
        if last.cancelled and not status.cancelled:
            # The event stream saw the cancel (a spent budget's, say) before the store has it.
            return dataclasses.replace(status, cancelled=True, budget_spent=last.budget_spent)
        return status

    def best(self, study_id: str, n: int = 10, library: str | None = None) -> list[TrialRecord]:
        """The `n` best trials (of `library`), best first; none for a study not registered."""
        study = self.store.study(str(study_id))
        if study is None:
            return []
        return self.store.leaderboard(study.study_id, study.revision, limit=n, library=library)

    def plan(self, study_id: str) -> list[PlannedTrial]:
        """The trials the planner decided for the study's current revision, in its order, each
        with the search that decided it."""
        study = self.study_record(study_id)
        return [t for t in self.store.plan(study.study_id) if t.revision == study.revision]

    def decisions(self, study_id: str, trial_ids: Collection[str] | None = None) -> Decisions:
        """Which search decided each trial of the study (of `trial_ids`, or all): the plan's
        record (see `tunefleet_contract.search.views`)."""
        study = self.study_record(study_id)
        return Decisions(study.spec, self.store.plan(study.study_id, trial_ids))

    def trials(self, study_id: str) -> list[TrialRecord]:
        """The study's results in its current revision, best first (failed ones last); none
        for a study not registered (yet)."""
        study = self.store.study(str(study_id))
        return [] if study is None else self.store.results(study.study_id, study.revision)

    def prices(self, study_id: str) -> PriceTable | None:
        """The prices the study's money is counted at: its cost budget's, else this client's
        TUNEFLEET_PRICES; None: neither (the ledger is in core-hours only)."""
        return prices_for(self.store.study(str(study_id)), self.settings.tunefleet_prices)

    def cost(self, study_id: str, *, wasted_core_s: Mapping[str, float] | None = None) -> Ledger:
        """The study's cost ledger (`tunefleet.cost`): per study, pool, library and trial,
        what preemptions wasted, and the cost per unit of score improvement."""
        record = self.study_record(study_id)
        status = self.status(study_id)
        state = str(status.state) if status is not None else ""
        prices = prices_for(record, self.settings.tunefleet_prices)
        results = self.trials(study_id)
        # Estimated from the stored deliveries (their ends are not stored), unless none was
        # abandoned: then nothing was wasted, exactly.
        exact = wasted_core_s is not None or all(r.attempts <= 1 for r in results)
        if wasted_core_s is None:
            wasted_core_s = self.wasted(record, results, core=True)
        return ledger(record, results, prices, state, wasted_core_s, wasted_exact=exact)

    def wasted(
        self,
        record: StudyRecord,
        results: Sequence[TrialRecord],
        *,
        stopped_at: Mapping[str, float] | None = None,
        core: bool = False,
    ) -> dict[str, float]:
        """What the abandoned deliveries of these results wasted, per trial, from the stored
        starts and fold checkpoints (`tunefleet.cost.wasted_seconds`; in core-seconds with
        `core`)."""
        again = [r for r in results if r.attempts > 1]
        if not again:
            return {}
        revision, ids = record.revision, {r.trial_id for r in again}
        starts = [s for s in self.store.starts(record.study_id, revision) if s.trial_id in ids]
        folds = self.store.fold_checkpoints(record.study_id, revision, ids, record.spec.cv.folds)
        cuts = self.store.round_checkpoints(record.study_id, revision, ids, record.spec.cv.folds)
        measure = wasted_core_seconds if core else wasted_seconds
        return measure(again, starts, folds, stopped_at, rounds=cuts)

    def trial(self, trial_id: str) -> TrialDetail | None:
        """One trial's result with its delivery attempts; a unique id prefix is enough.

        A trial that has started but has no result yet comes back with status `running`.
        """
        return self.store.trial(trial_id)

    def results(self, study_id: str) -> pd.DataFrame:
        """One row per trial with a result; parameters as `param_<name>` columns."""
        self.study_record(study_id)
        return frames.results(self.trials(study_id))

    def studies(self, limit: int = 50) -> pd.DataFrame:
        """The most recent studies, newest first, with how far each has got."""
        rows = []
        for study in self.store.studies(limit=limit):
            status = self.status(study.study_id)
            rows.append(
                {
                    "study_id": study.study_id,
                    "name": study.name,
                    "submitted_at": study.submitted_at,
                    "n_trials": study.n_trials,
                    "done": status.done if status else 0,
                    "failed": status.failed if status else 0,
                    "best_score": status.best_score if status else None,
                    "metric": status.metric if status else None,
                    "state": str(status.state if status else StudyState.SUBMITTED),
                }
            )
        return frames.studies(rows)
