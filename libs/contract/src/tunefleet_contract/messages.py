"""The wire contract: every message that crosses the broker, as JSON with a schema version.

Each message class has `encode() -> bytes` and `decode(bytes)`; decoding is strict (unknown
fields, wrong types and other schema versions are refused with `DecodeError`) so that a bad
message is dead-lettered with a reason instead of half-processed. Never pickle.

About 500 lines, on purpose: the wire contract lives in one place (the design's first decision),
every message a small class of its own that nothing else in the module depends on.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tunefleet_contract.cost import Pool
from tunefleet_contract.documents import check_document, load_json
from tunefleet_contract.params import Scalar
from tunefleet_contract.spec import (
    Checkpoint,
    DatasetSpec,
    EarlyStoppingSpec,
    StudySpec,
    Task,
    UploadDataset,
)

__all__ = [
    "CURVE_POINTS",
    "SCHEMA_VERSION",
    "DecodeError",
    "EarlyStopped",
    "Event",
    "FeatureLevels",
    "FoldCheckpoint",
    "FoldScore",
    "Message",
    "ModelRefit",
    "ModelStored",
    "PlannedSpec",
    "RoundCheckpoint",
    "StudyCancelled",
    "StudyRegistered",
    "StudyRequest",
    "StudyResumed",
    "TrialMessage",
    "TrialResult",
    "TrialSpec",
    "TrialsPlanned",
    "TrialsSettled",
    "TrialsStarted",
    "decode_event",
    "decode_work",
    "finite_or_none",
]

SCHEMA_VERSION = 1

TrialId = Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]
StudyId = Annotated[str, Field(min_length=1, max_length=100)]
# Every resume makes a new revision of its study (0 is the first submission). Trials carry the
# revision they were published in: workers skip those of an older one, whose missing trials
# the resume has republished, and the store shows the results of the current one only.
Revision = Annotated[int, Field(ge=0, le=1_000_000)]


class DecodeError(ValueError):
    """The bytes are not a valid message of the expected kind; the text says why."""


class _Document(BaseModel):
    """A model that becomes a store document: its keys and nesting are checked however it is
    built (decoded, or constructed in code from values that came from outside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_document(data)
        return data


class Message(_Document):
    kind: ClassVar[str]
    schema_version: Literal[1] = 1
    # Fields added since messages were first published, left out while they hold their
    # default (None, empty): a service of the release before still decodes such a message.
    _omit_unset: ClassVar[tuple[str, ...]] = ()

    def encode(self) -> bytes:
        payload = self.model_dump(mode="json")
        for key in self._omit_unset:
            if payload.get(key) in (None, {}, []):
                del payload[key]
        self._omit_nested(payload)
        payload["kind"] = self.kind
        # allow_nan=False: FerretDB stores no NaN, and JSON has none; sanitize before encoding.
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()

    def _omit_nested(self, payload: dict[str, Any]) -> None:
        """Like `_omit_unset`, for fields added to a part of the message since."""

    @classmethod
    def decode(cls, body: bytes) -> Self:
        payload = _load(body)
        kind = payload.pop("kind", None)
        if kind != cls.kind:
            raise DecodeError(f"expected a {cls.kind!r} message, got kind={kind!r}")
        return _validate(cls, payload)


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = load_json(body)
    except ValueError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise DecodeError(f"expected a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DecodeError(f"schema_version {version!r} is not supported (this is {SCHEMA_VERSION})")
    return payload


M = TypeVar("M", bound="Message")


def _validate(cls: type[M], payload: dict[str, Any]) -> M:
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise DecodeError(f"invalid {cls.kind!r} message: {details}") from None


def finite_or_none(value: float | None) -> float | None:
    """NaN and infinities become None: JSON and FerretDB store neither."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class StudyRequest(Message):
    """CLI/API → publisher: run this study."""

    kind: ClassVar[str] = "study.request"
    study_id: StudyId
    spec: StudySpec
    submitted_at: float
    revision: Revision = Field(
        default=0, description="A resume's new revision: the planner publishes what is missing."
    )
    rerun_failed: bool = Field(
        default=False, description="The resume publishes failed trials again, too."
    )

    @model_validator(mode="after")
    def _data_stored(self) -> StudyRequest:
        _require_stored(self.spec.dataset)
        # A cost budget is counted at prices the submitter resolved (Client.with_prices).
        budget = self.spec.budget
        problem = budget.problem() if budget is not None else None
        if problem is not None:
            raise ValueError(problem)
        return self


def _require_stored(dataset: DatasetSpec) -> None:
    # A path on the submitter's laptop means nothing to a worker: only content hashes travel.
    if isinstance(dataset, UploadDataset):
        dataset.require_stored()


class TrialSpec(_Document):
    trial_id: TrialId
    library: str
    params: dict[str, Scalar]


class PlannedSpec(TrialSpec):
    """A trial as the plan records it: with the search that decided it and, for a search with
    rungs (ASHA), the rung. Both are None in plans recorded before the plan named them. In a
    trial message it is the `TrialSpec` it also is: a message encodes its trials as its
    `trials` field declares them (pydantic serializes by the declared type), so workers get
    neither field."""

    search: str | None = Field(default=None, min_length=1, max_length=100)
    rung: int | None = Field(default=None, ge=0, le=10_000)


class RoundCheckpoint(Message):
    """Worker → collector: on a stop (SIGTERM), the fold in training of a trial was cut at
    `round` of its `rounds` and its booster stored as a blob in the library's native format.
    Stored, one record per trial, fold and round, so that the next delivery continues that
    fold from `round` instead of from its first (`checkpoint: rounds`, docs/spec.md). For a
    family (trials differing only in their rounds) `trial_id` is the member whose parameters
    were fitted, the one of most rounds."""

    kind: ClassVar[str] = "round.checkpoint"
    study_id: StudyId
    revision: Revision = 0
    trial_id: TrialId
    library: str = Field(min_length=1, max_length=100)
    fold: int = Field(ge=0, le=99)
    folds: int = Field(ge=2, le=100, description="The trial's number of folds.")
    round: int = Field(ge=1, description="Rounds trained, all in the stored booster.")
    rounds: int = Field(ge=2, description="Rounds the fold trains in all.")
    fit_time_s: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Seconds the fit ran up to the cut, over every delivery that trained it "
        "(for a family, the whole shared fit): what the cost ledger carries to the result.",
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The booster's blob.")
    format: str = Field(min_length=1, max_length=20)
    size: int = Field(ge=0)
    worker: str = Field(default="", max_length=200)
    saved_at: float

    @model_validator(mode="after")
    def _in_range(self) -> RoundCheckpoint:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is not one of {self.folds} folds")
        if self.round >= self.rounds:
            raise ValueError(f"round {self.round} is not before the last of {self.rounds}")
        return self


class TrialMessage(Message):
    """Publisher → workers: a chunk of trials of one study, with what is needed to run them."""

    kind: ClassVar[str] = "trial.batch"
    study_id: StudyId
    dataset: DatasetSpec
    task: Task | None
    metric: str | None
    folds: int = Field(ge=2, le=100)
    seed: int = Field(ge=0)
    trials: list[TrialSpec] = Field(min_length=1)
    revision: Revision = 0
    early_stopping: dict[str, EarlyStoppingSpec] = Field(
        default_factory=dict,
        description="Per library: its trials' rounds are chosen by the validation curve.",
    )
    checkpoint: Checkpoint = Field(
        default="folds",
        description="rounds: told to stop, the worker saves the fold in training at its "
        "current round (`RoundCheckpoint`) and hands the trial back at once.",
    )
    rounds_from: list[RoundCheckpoint] = Field(
        default_factory=list,
        max_length=1_000,
        description="Round checkpoints a hand-back carries to the next delivery, as published: "
        "it continues from them without waiting for the collector to have stored them.",
    )
    _omit_unset: ClassVar[tuple[str, ...]] = ("early_stopping", "rounds_from")

    def _omit_nested(self, payload: dict[str, Any]) -> None:
        if payload.get("checkpoint") == "folds":
            del payload["checkpoint"]  # the default, as a worker of the release before runs
        for stop in payload.get("early_stopping", {}).values():
            if stop.get("median", 0) is None:
                del stop["median"]

    @model_validator(mode="after")
    def _data_stored(self) -> TrialMessage:
        _require_stored(self.dataset)
        return self


class TrialsPlanned(Message):
    """Planner → collector, before their trial messages: trials the planner has decided for
    this revision of the study. The store's record of them is the study's trial set: what the
    collector, the client and a restarted planner read instead of expanding the spec again."""

    kind: ClassVar[str] = "trials.planned"
    study_id: StudyId
    revision: Revision = 0
    first: int = Field(ge=0, description="Position of the first of these in the plan.")
    trials: list[PlannedSpec] = Field(min_length=1)
    after: TrialId | None = Field(
        default=None,
        description="An adaptive search decided these on this trial's result (None: before "
        "any result).",
    )


class StudyRegistered(Message):
    """Planner → collector, after its `TrialsPlanned`: the study exists and has this many
    trials (in this revision: a later revision replaces the stored spec and count), of which
    `published` go to the workers; the rest keep the results they have."""

    kind: ClassVar[str] = "study.registered"
    study_id: StudyId
    spec: StudySpec
    n_trials: int = Field(ge=0)
    submitted_at: float
    published_at: float
    revision: Revision = 0
    rerun_failed: bool = False
    published: int = Field(
        default=0, ge=0, description="Trials without a result (or failed ones, when rerun)."
    )
    kept: int = Field(default=0, ge=0, description="Trials whose stored results count as they are.")
    kept_failed: int = Field(default=0, ge=0, description="Of those kept: failed ones.")
    superseded: int = Field(
        default=0, ge=0, description="Results of the revision before that this one no longer has."
    )
    planned: int | None = Field(
        default=None,
        ge=0,
        description="Trials planned by now (None: all n_trials); an adaptive search plans "
        "the rest as results arrive.",
    )


class TrialsStarted(Message):
    """Worker → collector: a worker has begun these trials (delivery `attempt`)."""

    kind: ClassVar[str] = "trial.started"
    study_id: StudyId
    trial_ids: list[TrialId] = Field(min_length=1)
    worker: str
    attempt: int = Field(ge=1)
    started_at: float
    revision: Revision = 0
    preemptions: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Times these trials were handed back by a worker told to stop (SIGTERM: a "
        "spot node's notice, a scale-down) before this delivery; None: never. Counted apart "
        "from redeliveries, and never against the delivery limit.",
    )
    _omit_unset: ClassVar[tuple[str, ...]] = ("preemptions",)


class FoldScore(_Document):
    """One trial's finished fold: its score and what it cost."""

    trial_id: TrialId
    score: float | None = Field(
        allow_inf_nan=False, description="The scorer's value on the fold; None: not finite."
    )
    fit_time_s: float = Field(
        ge=0, allow_inf_nan=False, description="This trial's share of the fold's fit."
    )
    score_time_s: float = Field(ge=0, allow_inf_nan=False)


class FoldCheckpoint(Message):
    """Worker → collector: fold `fold` of these trials is finished (one fit, or one shared by a
    family). Stored, one record per trial and fold, so that a delivery of the trials after a
    preemption or a crash trains only the folds that have none; the scores are the very floats
    the uninterrupted run would have averaged, so the result is the same, bit for bit."""

    kind: ClassVar[str] = "fold.checkpoint"
    study_id: StudyId
    revision: Revision = 0
    fold: int = Field(ge=0, le=99)
    folds: int = Field(ge=2, le=100, description="The trials' number of folds.")
    trials: list[FoldScore] = Field(min_length=1, max_length=100_000)
    worker: str = Field(default="", max_length=200)
    finished_at: float

    @model_validator(mode="after")
    def _fold_in_range(self) -> FoldCheckpoint:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is not one of {self.folds} folds")
        return self


# A stored validation curve has at most this many points (see `EarlyStopped`).
CURVE_POINTS = 500


class EarlyStopped(_Document):
    """How early stopping chose a trial's rounds: the mean and standard deviation over the
    folds of the validation metric after each round, and the round of the best mean.

    The curve is bounded: longer than `CURVE_POINTS` rounds, it keeps every `step`-th round
    from the first, plus the best, the stopping and the last; `curve_rounds` says which.
    Values that are not finite are stored as None (no store keeps NaN)."""

    metric: str = Field(max_length=100, description="The library's evaluation metric.")
    greater_is_better: bool
    rounds: int = Field(ge=1, description="Patience: rounds without improvement that stop.")
    max_rounds: int = Field(ge=1)
    best_round: int = Field(ge=1, description="Rounds of the best mean; the score's models.")
    stop_round: int = Field(
        ge=1, description="The round after which the rule stopped (or the limit)."
    )
    rounds_trained: int = Field(
        ge=1,
        description="Rounds each fold was trained for: stop_round where the folds advance "
        "together (XGBoost, LightGBM), max_rounds where each trains to the limit (CatBoost).",
    )
    best_value: float | None = None
    stopped_by: Literal["median"] | None = Field(
        default=None,
        description="median: the median rule across trials stopped it after stop_round, "
        "worse than the finished trials' median curve; None: patience or the limit did.",
    )
    median_trials: int | None = Field(
        default=None,
        ge=0,
        description="With the median rule: how many finished trials' curves it was given at "
        "the trial's start (None: the rule was off, or the worker could not read the store).",
    )
    curve_rounds: list[int] = Field(default_factory=list, max_length=CURVE_POINTS + 3)
    curve_mean: list[float | None] = Field(default_factory=list, max_length=CURVE_POINTS + 3)
    curve_std: list[float | None] = Field(default_factory=list, max_length=CURVE_POINTS + 3)

    @model_validator(mode="after")
    def _aligned(self) -> EarlyStopped:
        if not len(self.curve_rounds) == len(self.curve_mean) == len(self.curve_std):
            raise ValueError("curve_rounds, curve_mean and curve_std must have equal lengths")
        if not self.best_round <= self.stop_round <= self.rounds_trained:
            raise ValueError("best_round <= stop_round <= rounds_trained does not hold")
        return self


class TrialResult(Message):
    """Worker (or collector, for dead-lettered trials) → store: how one trial ended."""

    kind: ClassVar[str] = "trial.result"
    study_id: StudyId
    trial_id: TrialId
    library: str
    params: dict[str, Scalar]
    status: Literal["done", "failed"]
    metric: str | None = None
    task: Task | None = None
    score: float | None = None
    score_std: float | None = None
    fold_scores: list[float | None] = Field(default_factory=list)
    fit_time_s: float | None = None
    score_time_s: float | None = None
    fit_shared_by: int = Field(
        default=1,
        ge=1,
        le=100_000,
        description="Trials of one family scored from the same fits (one per fold, at the "
        "family's largest rounds); fit_time_s is this trial's equal share of those fits.",
    )
    library_version: str | None = None
    worker: str = ""
    attempts: int = Field(default=1, ge=1)
    error: str | None = Field(default=None, max_length=10_000)
    reason: str | None = None
    finished_at: float
    revision: Revision = 0
    early_stopping: EarlyStopped | None = None
    core_s: float | None = Field(
        default=None,
        ge=0,
        description="Core-seconds the trial held on its worker: wall seconds of its work times "
        "the cores the worker gave it, a family's shared fits split equally (docs/usage.md, "
        "Cost). None: from a worker of the release before.",
    )
    pool: Pool | None = Field(default=None, description="The worker node's pool.")
    resumed_folds: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Folds taken from the fold checkpoints of an earlier delivery instead of "
        "trained again (a trial handed back on a preemption, or redelivered); None: none.",
    )
    resumed_at_round: int | None = Field(
        default=None,
        ge=1,
        description="A fold of this trial continued from the round checkpoint an earlier "
        "delivery saved at this round (the lowest, where several did): the model is not "
        "always the uninterrupted one (docs/spec.md, Checkpoints); None: none did.",
    )
    _omit_unset: ClassVar[tuple[str, ...]] = (
        "early_stopping",
        "core_s",
        "pool",
        "resumed_folds",
        "resumed_at_round",
    )

    def _omit_nested(self, payload: dict[str, Any]) -> None:
        stop = payload.get("early_stopping")
        for key in ("stopped_by", "median_trials"):
            if stop and stop.get(key, 0) is None:
                del stop[key]

    @classmethod
    def of(
        cls,
        study_id: str,
        trial: TrialSpec,
        *,
        revision: int,
        attempts: int,
        status: Literal["done", "failed"],
        **fields: Any,
    ) -> TrialResult:
        """How `trial` ended, now. Revision and delivery count are required: a result without
        its revision sits outside a resumed study, and the count is what `show` reports."""
        return cls(
            study_id=study_id,
            trial_id=trial.trial_id,
            library=trial.library,
            params=trial.params,
            status=status,
            revision=revision,
            attempts=max(1, attempts),
            finished_at=time.time(),
            **fields,
        )

    @classmethod
    def failed(
        cls,
        study_id: str,
        trial: TrialSpec,
        *,
        revision: int,
        attempts: int,
        reason: str,
        error: str,
        **fields: Any,
    ) -> TrialResult:
        """The one way a `failed` result is built, by a worker or for a dead-lettered trial."""
        return cls.of(
            study_id,
            trial,
            revision=revision,
            attempts=attempts,
            status="failed",
            reason=reason,
            error=error[:10_000],
            **fields,
        )


class StudyCancelled(Message):
    """CLI/API → collector (records it) and workers (skip the study's trials still queued)."""

    kind: ClassVar[str] = "study.cancelled"
    study_id: StudyId
    cancelled_at: float
    by: str = Field(default="", max_length=200)
    reason: str | None = Field(default=None, max_length=2000)


class StudyResumed(Message):
    """CLI/API → collector and workers (before its re-request): the study runs again as
    `revision`; a cancel is lifted, and workers skip what is still queued of older revisions.
    What the revision runs is the planner's to decide (its `StudyRegistered` says)."""

    kind: ClassVar[str] = "study.resumed"
    study_id: StudyId
    resumed_at: float
    by: str = Field(default="", max_length=200)
    revision: Revision = 0


class TrialsSettled(Message):
    """Worker → every worker (control stream): these trials have confirmed results although
    their delivery could not be acked (the broker took it back after `consumer_timeout` while
    they ran). The broker redelivers the message; a worker that gets it skips these trials
    instead of computing them again."""

    kind: ClassVar[str] = "trials.settled"
    study_id: StudyId
    trial_ids: list[TrialId] = Field(min_length=1)
    revision: Revision = 0
    worker: str = Field(default="", max_length=200)
    settled_at: float


class ModelRefit(Message):
    """CLI/API → a worker (on the trials queue, like a trial): train this trial's configuration
    on the whole dataset and store the model. Idempotent: the model's id is the trial id."""

    kind: ClassVar[str] = "model.refit"
    study_id: StudyId
    trial_id: TrialId
    library: str
    params: dict[str, Scalar]
    dataset: DatasetSpec
    task: Task | None
    requested_at: float
    by: str = Field(default="", max_length=200)
    best_round: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="The trial's rounds as early stopping chose them: the refit trains "
        "exactly this many.",
    )
    _omit_unset: ClassVar[tuple[str, ...]] = ("best_round",)

    @model_validator(mode="after")
    def _data_stored(self) -> ModelRefit:
        _require_stored(self.dataset)
        return self


class FeatureLevels(_Document):
    feature: str
    levels: list[str]


class ModelStored(Message):
    """Worker → collector: a refit ended; when `done`, the model's bytes are stored as the blob
    `sha256` (tunefleet_runtime.blobs) in the library's native format, described by the rest."""

    kind: ClassVar[str] = "model.stored"
    study_id: StudyId
    trial_id: TrialId
    library: str
    params: dict[str, Scalar]
    status: Literal["done", "failed"]
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    format: str | None = Field(default=None, max_length=40, description="ubj, txt or cbm")
    size: int | None = Field(default=None, ge=0)
    library_version: str | None = None
    dataset: DatasetSpec
    task: Task | None = None
    feature_names: list[str] = Field(default_factory=list)
    feature_types: list[str] = Field(default_factory=list, description="dtype per feature")
    # A list, not a mapping: column names may hold `.` or `$`, which no store key may.
    categories: list[FeatureLevels] = Field(
        default_factory=list, description="The levels of each categorical feature, in order."
    )
    classes: list[Scalar] = Field(
        default_factory=list, description="Original class labels; the model predicts indices."
    )
    missing_category: str | None = Field(
        default=None,
        description="The level a missing category was given (a library that refuses NaN "
        "there, CatBoost); None: missing stays NaN.",
    )
    n_rows: int | None = Field(default=None, ge=0)
    fit_time_s: float | None = None
    worker: str = ""
    attempts: int = Field(default=1, ge=1)
    error: str | None = Field(default=None, max_length=10_000)
    finished_at: float
    rounds: int | None = Field(
        default=None,
        ge=1,
        description="Boosting rounds of the stored model where early stopping chose them "
        "(its best round); None: the trial's parameters say.",
    )
    rounds_from: Literal["early_stopping"] | None = None
    _omit_unset: ClassVar[tuple[str, ...]] = ("rounds", "rounds_from")


# Routing keys on the events exchange are the kinds: watchers and the control stream bind them.
EVENT_KINDS: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (
        TrialsPlanned,
        StudyRegistered,
        TrialsStarted,
        TrialResult,
        StudyCancelled,
        StudyResumed,
        TrialsSettled,
        ModelStored,
        FoldCheckpoint,
        RoundCheckpoint,
    )
}

Event = (
    TrialsPlanned
    | StudyRegistered
    | TrialsStarted
    | TrialResult
    | StudyCancelled
    | StudyResumed
    | TrialsSettled
    | ModelStored
    | FoldCheckpoint
    | RoundCheckpoint
)


def decode_work(body: bytes) -> TrialMessage | ModelRefit:
    """Decode what the trials queue carries: trials, or a refit (one slot per worker for both)."""
    payload = _load(body)
    kind = payload.pop("kind", None)
    work: dict[str, type[Message]] = {TrialMessage.kind: TrialMessage, ModelRefit.kind: ModelRefit}
    cls = work.get(str(kind))
    if cls is None:
        raise DecodeError(f"expected a 'trial.batch' or 'model.refit' message, got kind={kind!r}")
    return _validate(cls, payload)  # type: ignore[return-value]


def decode_event(body: bytes) -> Event:
    """Decode any message published on the events exchange."""
    payload = _load(body)
    kind = payload.pop("kind", None)
    cls = EVENT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise DecodeError(f"unknown event kind {kind!r}")
    return _validate(cls, payload)  # type: ignore[return-value]
