"""Submitting studies and reading their results: what the CLI and notebooks use.

    client = Client()                      # RABBITMQ_URL, MONGODB_URL from the environment
    study = client.submit("spec.yaml")     # a Study (also the study id, as a str)
    study.wait(progress=True)              # live, from the broker's event stream
    study.results()                        # pandas DataFrame, one row per trial
    study.best(5, by_library=True)

The client writes only through the broker (requests, cancels, resumes); it reads MongoDB.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import importlib
import socket
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunefleet_contract.messages import (
    ModelRefit,
    ModelStored,
    StudyCancelled,
    StudyRequest,
    StudyResumed,
)
from tunefleet_contract.search.views import Decisions, SearchStatus
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
)
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import Store, open_blobs, open_store, study_status
from tunefleet_runtime.validation import load_spec, parse_spec, resolved_task, validate_spec

from tunefleet import models, upload
from tunefleet.progress import Progress, from_store, watch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Client", "DatasetInUseError", "Resumption", "Study", "StudyNotFoundError"]

SpecLike = StudySpec | Mapping[str, Any] | str | Path

# The columns of `results()` besides the parameters, in this order.
RESULT_COLUMNS = [
    "trial_id",
    "library",
    "status",
    "score",
    "score_std",
    "metric",
    "fit_time_s",
    "score_time_s",
    "fit_shared_by",
    "attempts",
    "worker",
    "finished_at",
    "reason",
    "error",
]
# Like scikit-learn's cv_results_: `param_<name>`, so a parameter never shadows a column.
PARAM_PREFIX = "param_"


class DatasetInUseError(ValueError):
    """A dataset that a study uses cannot be deleted."""


class StudyNotFoundError(LookupError):
    """No study with this id has been registered (yet)."""


@dataclasses.dataclass(frozen=True)
class Resumption:
    """What a resume published, and what it kept of the results already stored."""

    study_id: str
    revision: int  # the study's revision now: one more than before, unless nothing was to do
    n_trials: int  # trials in the (fixed) spec
    republished: int  # of those: without a result, or failed when rerunning failures
    kept: int  # of those: results already stored, which count as they are
    kept_failed: int  # of those kept: failed ones (`rerun_failed` runs them again)
    superseded: int  # results of the revision before that the fixed spec no longer has
    spec_changed: bool

    @property
    def published(self) -> bool:
        return self.republished > 0 or self.spec_changed


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return socket.gethostname()


class Study(str):
    """A handle on one study. It *is* its id (a `str`), so it goes wherever an id goes."""

    client: Client
    _spec: StudySpec | None
    _revision: int  # the newest this handle made (a resume): `wait` counts nothing older

    def __new__(
        cls, study_id: str, client: Client, spec: StudySpec | None = None, revision: int = 0
    ) -> Study:
        self = super().__new__(cls, study_id)
        self.client = client
        self._spec = spec
        self._revision = revision
        return self

    @property
    def id(self) -> str:
        return str(self)

    @property
    def spec(self) -> StudySpec:
        if self._spec is None:
            self._spec = self.client.stored_spec(self)
        return self._spec

    def status(self) -> StudyStatus | None:
        return self.client.status(self)

    def wait(self, progress: bool = True, *, timeout_s: float | None = None) -> StudyStatus:
        """Block until every trial has a result (or the study is cancelled); `progress` shows
        a live bar (rich in a terminal, an updating HTML bar in Jupyter)."""
        if not progress:
            return self.client.wait(self, timeout_s=timeout_s, revision=self._revision)
        with progress_display(self) as show:
            return self.client.wait(
                self, timeout_s=timeout_s, on_progress=show, revision=self._revision
            )

    def results(self) -> pd.DataFrame:
        return self.client.results(self)

    def best(self, n: int = 10, by_library: bool = False) -> pd.DataFrame:
        """The `n` best trials, or the `n` best of each library."""
        frame = self.results()
        frame = frame[(frame["status"] == "done") & frame["score"].notna()]
        frame = frame.sort_values("score", ascending=False, kind="stable")
        if by_library:
            frame = frame.groupby("library", sort=True, group_keys=False).head(n)
            frame = frame.sort_values(["library", "score"], ascending=[True, False])
        else:
            frame = frame.head(n)
        # Parameters that none of these trials has (another library's) are noise here.
        return frame.dropna(axis="columns", how="all").reset_index(drop=True)

    def refit(self, trial_id: str | None = None) -> str:
        """Ask a worker to train a trial (the best by default) on the whole dataset and store
        the model; returns the trial id. Idempotent: the model's id is the trial's."""
        return self.client.refit(self, trial_id)

    def model(self, trial_id: str | None = None) -> ModelStored | None:
        """The stored model's description (of the best trial's, by default), if refitted."""
        return self.client.model(self, trial_id)

    def best_model(self, *, timeout_s: float = 600) -> Any:
        """The best trial's model, fitted on the whole dataset, as the library's scikit-learn
        estimator: refitted first (and waited for) unless stored already. Predict on
        `study.prepare(frame)`."""
        return self.client.best_model(self, timeout_s=timeout_s)

    def prepare(self, frame: pd.DataFrame, trial_id: str | None = None) -> Any:
        """`frame`'s features as the stored model takes them (columns, category levels)."""
        model = self.client.model(self, trial_id)
        if model is None:
            raise LookupError(f"study {self}: no stored model; refit first")
        return models.prepare(frame, model)

    def cancel(self, reason: str | None = None) -> None:
        self.client.cancel(self, reason=reason)

    def resume(self, spec: SpecLike | None = None, *, rerun_failed: bool = False) -> Resumption:
        """See `Client.resume`; with `spec`, a fixed spec replaces the study's own."""
        resumption = self.client.resume(self, spec, rerun_failed=rerun_failed)
        self._revision = resumption.revision
        if spec is not None:
            self._spec = None  # read the fixed one back from the store when asked
        return resumption

    def __repr__(self) -> str:
        return f"Study({str(self)!r})"


class Client:
    """`store`: where to read from (by default MongoDB at the settings' MONGODB_URL)."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        store: Store | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or ClientSettings(**overrides)
        self.store: Store = store or open_store(self.settings)

    @staticmethod
    def spec(spec: SpecLike) -> StudySpec:
        """Validate a spec given as a model, a mapping or a path to a YAML/JSON file."""
        if isinstance(spec, StudySpec):
            return validate_spec(spec)
        if isinstance(spec, str | Path):
            return load_spec(spec)
        return parse_spec(spec)

    # -- writing, through the broker ---------------------------------------------------------

    def _publish(self, exchange: Callable[[Any], str], routing_key: str, body: bytes) -> None:
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
        )

    def publishable(self, spec: SpecLike, data: pd.DataFrame | None = None) -> StudySpec:
        """The spec as it is published: validated, and its data uploaded (`tunefleet.upload`):
        a local CSV/Parquet path or `data` becomes the content's hash."""
        study = self.spec(spec)
        base = Path(spec).parent if isinstance(spec, str | Path) else None
        return upload.resolve(study, self.blobs, data, base)

    def submit(self, spec: SpecLike, *, data: pd.DataFrame | None = None) -> Study:
        """Publish the study request (confirmed by the broker); returns the study. The planner
        decides its trials.

        `data`: a DataFrame to tune on, for a spec whose dataset is `{kind: upload, target}`;
        it is uploaded once (as Parquet) and the spec records its SHA-256."""
        study = self.publishable(spec, data)
        study_id = study.study_id()
        request = StudyRequest(study_id=study_id, spec=study, submitted_at=time.time())
        self._publish(lambda t: t.studies_exchange, "study", request.encode())
        return Study(study_id, self, study)

    def cancel(self, study_id: str, *, reason: str | None = None) -> None:
        """Cancel: the collector records it; workers skip the study's trials still queued
        (they stay without a result, so `resume` runs them)."""
        self._require(study_id)
        event = StudyCancelled(
            study_id=study_id, cancelled_at=time.time(), by=_who(), reason=reason
        )
        self._publish(lambda t: t.events_exchange, event.kind, event.encode())
        self._recorded(study_id, lambda study: study.cancelled)

    def registered(self, study_id: str, *, timeout_s: float = 10.0) -> StudyRecord | None:
        """The study as the planner registered it (with its exact number of trials: a spec's
        `n_trials()` counts a point named by two grids twice), waiting up to `timeout_s` for
        it; None if it is not registered by then."""
        return self._recorded(study_id, lambda _study: True, timeout_s=timeout_s)

    def _recorded(
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
        study = self._require(study_id)
        stored = self.store.result_states(study.study_id)
        planned = self.store.planned_trials(study.study_id, study.revision)
        return [tid for tid in planned if tid not in stored]

    def resume(
        self, study_id: str, spec: SpecLike | None = None, *, rerun_failed: bool = False
    ) -> Resumption:
        """Run what is missing: the trials without a result (crashed, lost, cancelled), and
        with `rerun_failed` the failed ones too. Lifts a cancel.

        `spec` is a fixed spec for the same study (same name): it replaces the stored one, and
        only its trials that have no result run. A trial it shares with the old spec (same
        library, parameters, data, metric and folds) keeps its result; a result of a trial it
        no longer has is superseded (kept in the store, out of status, results and reports).
        Each resume that publishes is a new revision of the study: workers skip what is still
        queued of older ones, so nothing runs twice. Nothing to do publishes nothing.

        The planner decides the new revision's trials; this waits (at most 15 s) until the
        collector has recorded them, and reports what the planner decided.
        """
        study = self._require(study_id)
        study_id = study.study_id
        stored_spec = study.spec
        new_spec = stored_spec if spec is None else self.publishable(spec)
        if new_spec.name != stored_spec.name:
            raise SpecError(
                f"name: the fixed spec is named {new_spec.name!r}, but study {study_id} is "
                f"{stored_spec.name!r}; a resume keeps the study (submit a new one instead)"
            )
        revision = study.revision
        # The same spec has the same trial set: the store's record of it (the plan) and the
        # results tell what is missing, without waiting for the planner to say so (once an
        # adaptive search has decided all of its trials).
        planned = self.store.planned_trials(study_id, revision) if new_spec == stored_spec else []
        known: Resumption | None = None
        if planned and len(planned) >= study.n_trials:
            stored = self.store.result_states(study_id)
            states = [stored[tid][0] if tid in stored else None for tid in planned]
            failed = states.count("failed")
            republished = states.count(None) + (failed if rerun_failed else 0)
            known = Resumption(
                study_id=study_id,
                revision=revision,
                n_trials=len(planned),
                republished=republished,
                kept=len(planned) - republished,
                kept_failed=0 if rerun_failed else failed,
                superseded=0,
                spec_changed=False,
            )
            if not known.published:
                return known
        revision += 1
        event = StudyResumed(
            study_id=study_id, resumed_at=time.time(), by=_who(), revision=revision
        )
        # The control stream first: workers then skip the older revision's queued copies.
        self._publish(lambda t: t.events_exchange, event.kind, event.encode())
        request = StudyRequest(
            study_id=study_id,
            spec=new_spec,
            submitted_at=time.time(),
            revision=revision,
            rerun_failed=rerun_failed,
        )
        self._publish(lambda t: t.studies_exchange, "study", request.encode())
        recorded = self._recorded(
            study_id,
            lambda record: record.revision >= revision and not record.cancelled,
            timeout_s=15.0 if known is not None else 60.0,
        )
        if known is not None:
            return dataclasses.replace(known, revision=revision)
        if recorded is None or recorded.revision != revision:
            # A new trial set: only the planner knows what it keeps, and it has not said yet.
            raise TimeoutError(
                f"study {study_id}: revision {revision} is published, but the planner and the "
                "collector have not recorded it yet (`tunefleet status` shows it once they have)"
            )
        return Resumption(
            study_id=study_id,
            revision=revision,
            n_trials=recorded.n_trials,
            republished=recorded.published,
            kept=recorded.kept,
            kept_failed=recorded.kept_failed,
            superseded=recorded.superseded,
            spec_changed=new_spec != stored_spec,
        )

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
            by=_who(),
        )
        # On the trials queue: a worker takes it as it takes trials, one at a time, and it is
        # redelivered like them if the worker dies before the model is stored.
        self._publish(lambda t: t.trials_exchange, "trial", message.encode())
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

    # -- reading, from the store -------------------------------------------------------------

    def study(self, study_id: str) -> Study:
        self._require(study_id)
        return Study(study_id, self)

    def _require(self, study_id: str) -> StudyRecord:
        study = self.store.study(str(study_id))
        if study is None:
            raise StudyNotFoundError(f"no study {str(study_id)!r}")
        return study

    def stored_spec(self, study_id: str) -> StudySpec:
        return self._require(study_id).spec

    def study_record(self, study_id: str) -> StudyRecord:
        return self._require(study_id)

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
        study = self._require(study_id)
        return [t for t in self.store.plan(study.study_id) if t.revision == study.revision]

    def decisions(self, study_id: str, trial_ids: Collection[str] | None = None) -> Decisions:
        """Which search decided each trial of the study (of `trial_ids`, or all): the plan's
        record (see `tunefleet_contract.search.views`)."""
        study = self._require(study_id)
        return Decisions(study.spec, self.store.plan(study.study_id, trial_ids))

    def trials(self, study_id: str) -> list[TrialRecord]:
        """The study's results in its current revision, best first (failed ones last); none
        for a study not registered (yet)."""
        study = self.store.study(str(study_id))
        return [] if study is None else self.store.results(study.study_id, study.revision)

    def trial(self, trial_id: str) -> TrialDetail | None:
        """One trial's result with its delivery attempts; a unique id prefix is enough.

        A trial that has started but has no result yet comes back with status `running`.
        """
        return self.store.trial(trial_id)

    def results(self, study_id: str) -> pd.DataFrame:
        """One row per trial with a result; parameters as `param_<name>` columns."""
        import pandas as pd

        self._require(study_id)
        rows = []
        for record in sorted(self.trials(study_id), key=lambda r: r.trial_id):
            fields = record.as_dict()
            row = {column: fields.get(column) for column in RESULT_COLUMNS}
            for name, value in sorted(record.params.items()):
                row[PARAM_PREFIX + name] = value
            rows.append(row)
        frame = pd.DataFrame(rows, columns=None if rows else RESULT_COLUMNS)
        if not rows:
            return frame
        frame["finished_at"] = pd.to_datetime(frame["finished_at"], unit="s", utc=True)
        frame = frame.sort_values("finished_at", kind="stable").reset_index(drop=True)
        params = sorted(c for c in frame.columns if c.startswith(PARAM_PREFIX))
        return frame[RESULT_COLUMNS + params]

    def studies(self, limit: int = 50) -> pd.DataFrame:
        """The most recent studies, newest first, with how far each has got."""
        import pandas as pd

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
        columns = [
            "study_id",
            "name",
            "submitted_at",
            "n_trials",
            "done",
            "failed",
            "best_score",
            "metric",
            "state",
        ]
        frame = pd.DataFrame(rows, columns=columns)
        frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], unit="s", utc=True)
        return frame


class progress_display:  # noqa: N801 - used as a context manager, like `open`
    """A live progress bar: rich in a terminal, an updating HTML bar in Jupyter (through
    IPython's display handles, so it needs no widget extension)."""

    def __init__(self, study_id: str) -> None:
        self.study_id = study_id
        self._handle: Any = None
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[Progress], None]:
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_jupyter:
            # IPython has no type hints; only Jupyter ever takes this branch.
            self._ipython: Any = importlib.import_module("IPython.display")
            self._handle = self._ipython.display(
                self._ipython.HTML(self._html(None)), display_id=True
            )
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.study_id, total=None, detail="")
        return self.update

    def update(self, p: Progress) -> None:
        if self._handle is not None:
            self._handle.update(self._ipython.HTML(self._html(p)))
        elif self._rich is not None:
            self._rich.update(
                self._task,
                total=p.n_trials or None,
                completed=p.finished,
                detail=describe(p),
            )

    def _html(self, p: Progress | None) -> str:
        import html

        total = p.n_trials if p else 0
        value = p.finished if p else 0
        text = describe(p) if p else "waiting for the study to register"
        return (
            f"<div><b>{html.escape(self.study_id)}</b> "
            f'<progress max="{max(total, 1)}" value="{value}" style="width:40%"></progress> '
            f"{value}/{total} {html.escape(text)}</div>"
        )

    def __exit__(self, *_: object) -> None:
        if self._rich is not None:
            self._rich.stop()


def describe(p: Progress) -> str:
    """One line: what the bar shows next to the counts."""
    parts = [f"{p.running} running", f"{p.failed} failed"]
    if p.redelivered:
        parts.append(f"{p.redelivered} redelivered")
    if p.workers:
        parts.append(f"{p.workers} workers")
    if p.throughput:
        parts.append(f"{p.throughput:.2f}/s")
    if p.eta_s is not None and not p.complete:
        parts.append(f"ETA {format_duration(p.eta_s)}")
    if p.best_score is not None:
        parts.append(f"best {p.metric or 'score'} {p.best_score:.5g}")
    for search in p.searches:
        if search.adaptive is not None:
            parts.append(
                f"{search.library} {search.adaptive} {search.decided}/{search.n_trials} decided"
            )
    if p.cancelled:
        parts.append("CANCELLED")
    return ", ".join(parts)


def describe_search(search: SearchStatus, metric: str | None = None) -> str:
    """One library's search in a line: its strategy, how far an adaptive one has decided, the
    results (per rung for ASHA) and its best so far."""
    text = f"{search.strategy}: "
    if search.adaptive is not None:
        text += f"{search.decided} of {search.n_trials} {search.adaptive} trials decided, "
        text += f"{search.adaptive_finished} finished"
        if search.rungs:
            pairs = zip(search.rungs, search.rung_finished, strict=True)
            per_rung = ", ".join(f"{n} at {rounds}" for rounds, n in pairs)
            text += f" ({per_rung} rounds)"
        if search.finished > search.adaptive_finished:
            text += f"; {search.finished} finished in all"
    else:
        text += f"{search.finished} finished"
    if search.best_score is not None:
        text += f"; best {metric or 'score'} {search.best_score:.6f} (trial {search.best_trial_id})"
    return text


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
