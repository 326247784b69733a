"""The study spec's schema: what a user submits, and what messages carry.

Validating a spec here checks its structure only (types, fields, the shape of each
distribution), so that decoding a message that embeds one stays cheap. The checks that need a
library or a catalogue (scikit-learn's scorer names, each library's parameters, the study's
size) are `spec_problems` below plus the scorer check in `tunefleet_runtime.validation`: they
run once, at submit and in the planner.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from tunefleet_contract.cost import BudgetSpec
from tunefleet_contract.documents import check_document
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.params import LIBRARIES, Scalar, param_problem
from tunefleet_contract.rules import SpecError
from tunefleet_contract.search import HARD_LIMIT, AdaptiveSpec, SearchSpec, search_kinds
from tunefleet_contract.search.distributions import TAG_PREFIX as DISTRIBUTION_TAG

__all__ = [
    "BUILTIN_DATASETS",
    "HARD_LIMIT",
    "LARGE_STUDY",
    "BudgetSpec",
    "BuiltinDataset",
    "CVSpec",
    "Checkpoint",
    "DatasetSpec",
    "EarlyStoppingSpec",
    "FileDataset",
    "LibrarySearch",
    "LibrarySearchBase",
    "MedianStopSpec",
    "SpecError",
    "StudySpec",
    "SyntheticDataset",
    "UploadDataset",
    "coherence_problem",
    "default_metric",
    "early_stopping_problems",
    "format_validation_error",
    "search_problems",
]

# Studies above this many trials are refused unless the spec says `allow_large: true`: a typo in
# a grid (one list too many) should cost a message, not a day of cluster time.
LARGE_STUDY = 100_000

BUILTIN_DATASETS: Mapping[str, Literal["classification", "regression"]] = {
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
    "digits": "classification",
    "diabetes": "regression",
}

Task = Literal["classification", "regression"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BuiltinDataset(_Model):
    kind: Literal["builtin"] = "builtin"
    name: Literal["breast_cancer", "wine", "iris", "digits", "diabetes"]


class SyntheticDataset(_Model):
    kind: Literal["make_classification", "make_regression"]
    n_samples: int = Field(default=1000, ge=10, le=50_000_000)
    n_features: int = Field(default=20, ge=1, le=100_000)
    n_informative: int | None = Field(default=None, ge=1, le=100_000)
    n_redundant: int | None = Field(default=None, ge=0, le=100_000)
    n_classes: int | None = Field(default=None, ge=2, le=1000)
    noise: float | None = Field(default=None, ge=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _fits_kind(self) -> SyntheticDataset:
        if self.kind == "make_regression" and (
            self.n_classes is not None or self.n_redundant is not None
        ):
            raise ValueError("n_classes and n_redundant apply to make_classification only")
        if self.kind == "make_classification" and self.noise is not None:
            raise ValueError("noise applies to make_regression only")
        return self


DataFormat = Literal["csv", "parquet"]
DATA_FORMATS: Mapping[str, DataFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class FileDataset(_Model):
    kind: Literal["file"] = "file"
    path: str = Field(min_length=1, max_length=4096)
    target: str = Field(min_length=1, max_length=1000)

    @field_validator("path")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if Path(value).suffix.lower() not in DATA_FORMATS:
            raise ValueError("must end in .csv or .parquet")
        return value


class UploadDataset(_Model):
    """A table the client uploads to the store; workers fetch it by its content's SHA-256.

    What a user writes names the data: a local `path`, or nothing when `Client.submit` is given
    a DataFrame. The client uploads it and rewrites the dataset to `sha256` + `format`, which is
    all that is published (`require_stored`): the study id and the trial ids follow the
    content, never a path on the submitter's machine.
    """

    kind: Literal["upload"]
    target: str = Field(min_length=1, max_length=1000)
    path: str | None = Field(default=None, min_length=1, max_length=4096)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    format: DataFormat | None = None

    @model_validator(mode="after")
    def _path_or_hash(self) -> UploadDataset:
        if self.path is not None:
            if self.sha256 is not None:
                raise ValueError("give path (to upload) or sha256 (uploaded), not both")
            if Path(self.path).suffix.lower() not in DATA_FORMATS:
                raise ValueError("path: must end in .csv or .parquet")
        if (self.sha256 is None) != (self.format is None):
            raise ValueError("sha256 and format go together")
        return self

    def require_stored(self) -> None:
        """Refuse what only a client can resolve: a local path, or data still to be given."""
        if self.sha256 is None:
            raise ValueError(
                "dataset: an upload dataset must name its sha256 and format when published "
                "(the client uploads the data and rewrites the spec)"
            )


DatasetSpec = Annotated[
    BuiltinDataset | SyntheticDataset | FileDataset | UploadDataset, Field(discriminator="kind")
]


class CVSpec(_Model):
    folds: int = Field(default=5, ge=2, le=100)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class MedianStopSpec(_Model):
    """The median-stopping rule across trials (Optuna's MedianPruner, Katib's median stop): after
    `warmup` rounds, a trial whose best mean so far is worse than the median, at the same round,
    of the mean curves of the library's finished trials (once `after_trials` of them reach that
    round) for `rounds` consecutive rounds stops, scored at its best round so far."""

    warmup: int = Field(ge=0, le=100_000, description="Rounds before the rule looks.")
    after_trials: int = Field(
        ge=1, le=10_000, description="Finished trials at a round before it has a median."
    )
    rounds: int = Field(default=1, ge=1, le=100_000, description="Consecutive rounds worse.")


class EarlyStoppingSpec(_Model):
    """A library's rounds chosen by the validation curve: every fold trains up to `max_rounds`
    and stops when the mean over the folds of `metric` (the library's own evaluation metric;
    by default the one matching the study's scorer) has not improved for `rounds` rounds, or
    (with `median`) when it stays worse than the finished trials' median curve."""

    rounds: int = Field(ge=1, le=100_000)
    max_rounds: int = Field(ge=2, le=100_000)
    metric: str | None = Field(default=None, min_length=1, max_length=100)
    median: MedianStopSpec | None = None

    @model_validator(mode="after")
    def _can_stop(self) -> EarlyStoppingSpec:
        if self.rounds >= self.max_rounds:
            raise ValueError(
                f"rounds ({self.rounds}) must be less than max_rounds ({self.max_rounds}), "
                "or training could never stop early"
            )
        median = self.median
        if median is not None and median.warmup + median.rounds >= self.max_rounds:
            raise ValueError(
                f"median: warmup ({median.warmup}) + rounds ({median.rounds}) must be less than "
                f"max_rounds ({self.max_rounds}), or the median rule could never stop a trial"
            )
        return self

    def canonical(self) -> dict[str, object]:
        """As ids hash it: without `median` when not given, so that a spec without the rule
        keeps the study and trial ids it had before the rule existed."""
        data = self.model_dump(mode="json")
        if data["median"] is None:
            del data["median"]
        return data


ParamGridDict = dict[str, Annotated[list[Scalar], Field(min_length=1, max_length=100_000)]]
# The keys every stored spec's library part has had from the start; a search kind's key added
# since is left out of the canonical JSON when absent (see `StudySpec.canonical_json`).
_FIRST_KEYS = frozenset({"fixed", "grid", "random"})


class LibrarySearchBase(_Model):
    """One library's part of a study: fixed parameters, a scikit-learn ParameterGrid, and one
    optional section per search kind (`tunefleet_contract.search.kinds`: random, tpe, asha,
    ...), at most one of them adaptive. Without a search, an empty grid is one trial of the
    fixed parameters. `LibrarySearch` is this with a field per registered kind."""

    fixed: dict[str, Scalar] = Field(default_factory=dict)
    grid: ParamGridDict | list[ParamGridDict] = Field(default_factory=dict)
    early_stopping: EarlyStoppingSpec | None = None

    @model_validator(mode="after")
    def _one_adaptive(self) -> LibrarySearchBase:
        adaptive = [search.key for search in self.searches() if search.adaptive]
        if len(adaptive) > 1:
            raise ValueError(
                f"give {' or '.join(adaptive)}, not both (one adaptive search per library)"
            )
        return self

    def searches(self) -> list[SearchSpec]:
        """The sampled searches given, in precedence order (random, tpe, asha, ...)."""
        given = (getattr(self, key, None) for key in search_kinds())
        return [search for search in given if isinstance(search, SearchSpec)]

    @property
    def adaptive(self) -> AdaptiveSpec | None:
        """Its search that decides as results arrive, if any."""
        found = [search for search in self.searches() if isinstance(search, AdaptiveSpec)]
        return found[0] if found else None

    def grids(self) -> list[ParamGridDict]:
        """The grids that contribute trials (none when only sampled searches are given)."""
        grids = self.grid if isinstance(self.grid, list) else [self.grid]
        if self.searches() and all(not grid for grid in grids):
            return []
        return grids

    def grid_size(self) -> int:
        total = 0
        for grid in self.grids():
            count = 1
            for values in grid.values():
                count *= len(values)
            total += count
        return total

    def size(self) -> int:
        """Trials at most: a list of grids naming a point twice, or a random search in a
        small discrete space, yields fewer distinct trials."""
        return self.grid_size() + sum(search.n_trials for search in self.searches())


def _library_search() -> type[LibrarySearchBase]:
    fields: dict[str, Any] = {
        name: (kind.spec | None, None) for name, kind in search_kinds().items()
    }
    return create_model("LibrarySearch", __base__=LibrarySearchBase, __module__=__name__, **fields)


if TYPE_CHECKING:
    LibrarySearch = LibrarySearchBase
else:
    LibrarySearch = _library_search()


# What a trial handed back on a preemption keeps (docs/spec.md, Checkpoints): its finished folds
# (exact), or also the fold in training, saved at its current round (cheaper; not always exact).
Checkpoint = Literal["folds", "rounds"]


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StudySpec(_Model):
    name: str = Field(default="study", pattern=_NAME.pattern)
    dataset: DatasetSpec
    task: Task | None = None
    metric: str | None = None
    cv: CVSpec = Field(default_factory=CVSpec)
    search: dict[str, LibrarySearch] = Field(min_length=1)
    chunk_size: int = Field(default=1, ge=1, le=10_000)
    allow_large: bool = False
    budget: BudgetSpec | None = None
    checkpoint: Checkpoint = "folds"

    @model_validator(mode="after")
    def _rounds_without_early_stopping(self) -> StudySpec:
        if self.checkpoint == "rounds":
            stopped = [name for name, part in self.search.items() if part.early_stopping]
            if stopped:
                raise ValueError(
                    f"checkpoint: rounds is not with early_stopping ({', '.join(stopped)}): "
                    "an early-stopped trial's folds advance round by round together and keep "
                    "no checkpoint; use checkpoint: folds, or drop early_stopping"
                )
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Added since specs were first stored: left out when not given, so that every spec
        # without it keeps its study id, and a service of the release before decodes it.
        data: dict[str, Any] = handler(self)
        if data.get("budget", 0) is None:
            del data["budget"]
        if data.get("checkpoint") == "folds":
            del data["checkpoint"]
        return data

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # The spec is stored as a document: no key a store reads as an operator or a path, and
        # no nesting that pydantic's validation would recurse into.
        check_document(data)
        return data

    @field_validator("dataset", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `dataset: iris` is the common case; spell it out for the discriminated union.
        if isinstance(value, str):
            return {"kind": "builtin", "name": value}
        return value

    def dataset_task(self) -> Task | None:
        """The task that the dataset alone implies (None for files: read the target first)."""
        match self.dataset:
            case BuiltinDataset(name=name):
                return BUILTIN_DATASETS[name]
            case SyntheticDataset(kind=kind):
                return "classification" if kind == "make_classification" else "regression"
            case _:
                return None

    def resolved_metric(self, task: Task) -> str:
        return self.metric or default_metric(task)

    def n_trials(self) -> int:
        return sum(part.size() for part in self.search.values())

    @property
    def adaptive(self) -> bool:
        """Whether results decide some of its trials (a library has an adaptive search)."""
        return any(part.adaptive is not None for part in self.search.values())

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json")
        for part in data["search"].values():
            # Kinds added after studies were stored: left out when not given, so that a spec
            # that does not use them keeps the id (and its trials' ids) it always had.
            for key in set(part) - _FIRST_KEYS:
                if part[key] is None:
                    del part[key]
            if part.get("early_stopping") and part["early_stopping"].get("median", 0) is None:
                del part["early_stopping"]["median"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def study_id(self) -> str:
        """Same spec, same id: resubmitting a study addresses the same trials."""
        digest = hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"


def default_metric(task: Task) -> str:
    """What a study without `metric` is scored by: scikit-learn estimators' own `score`."""
    return "accuracy" if task == "classification" else "r2"


def search_problems(search: Mapping[str, LibrarySearch]) -> list[str]:
    """Every library, parameter name and value of a search checked against the catalogue
    (`tunefleet_contract.params`), each problem as `library.where.name: what`."""
    problems: list[str] = []
    for library, part in search.items():
        if library not in LIBRARIES:
            problems.append(f"{library}: unknown library; choose from {', '.join(LIBRARIES)}")
            continue
        for name, scalar in part.fixed.items():
            _collect(problems, f"{library}.fixed", library, name, [scalar])
        for i, grid in enumerate(part.grids()):
            where = f"{library}.grid" + (f"[{i}]" if isinstance(part.grid, list) else "")
            for name, values in grid.items():
                if name in part.fixed:
                    problems.append(f"{where}.{name}: also given in fixed")
                _collect(problems, where, library, name, values)
        for sampled in part.searches():
            problems.extend(sampled.problems(library, part.fixed))
        if part.early_stopping is not None:
            problems.extend(early_stopping_problems(library, part))
    return problems


def early_stopping_problems(library: str, part: LibrarySearchBase) -> list[str]:
    """Why a library's `early_stopping` cannot run as given: the curve chooses the rounds, so
    nothing else may set them, and the model cut after its best round must be the model
    trained for that many rounds (the families' condition)."""
    where = f"{library}.early_stopping"
    catalogue = catalogues()[library]
    assert part.early_stopping is not None
    if not catalogue.rounds or not catalogue.eval_metrics:
        return [f"{where}: {library} has no boosting rounds to stop"]
    problems: list[str] = []
    metric = part.early_stopping.metric
    if metric is not None and metric not in catalogue.eval_metrics:
        near = difflib.get_close_matches(metric, list(catalogue.eval_metrics), n=1)
        hint = (
            f" (did you mean {near[0]!r}?)"
            if near
            else f"; choose from {', '.join(catalogue.eval_metrics)}"
        )
        problems.append(f"{where}.metric: unknown {library} eval metric {metric!r}{hint}")
    adaptive = part.adaptive
    if adaptive is not None and adaptive.key == "asha":
        problems.append(
            f"{where}: not with asha: its rungs set the rounds that early stopping would "
            "choose (use tpe or random with early stopping)"
        )
    if part.early_stopping.median is not None and not catalogue.folds_stop_together:
        problems.append(
            f"{where}.median: not with {library}: its folds each train to max_rounds before "
            "the curve is known, so stopping a trial early would save nothing"
        )
    given = _values_given(library, part)
    for at, name, values in given:
        if name in catalogue.rounds:
            problems.append(
                f"{at}.{name}: set by early_stopping (max_rounds caps it); remove it here"
            )
        refused = [v for v in values if v in catalogue.cut_not_exact.get(name, ())]
        if refused:
            problems.append(
                f"{at}.{name}: {refused[0]!r} is not with early_stopping (a model cut after "
                "its best round is not the model trained for that many rounds)"
            )
    grids = part.grids()
    spaces = [search.space for search in part.searches()]
    for name in catalogue.cut_needs:
        if not (
            name in part.fixed
            or (grids and all(name in grid for grid in grids))
            or any(name in space and not space[name].when for space in spaces)
        ):
            problems.append(
                f"{where}: needs {name} in fixed (or in every grid, or unconditional in the "
                f"space): without it {library} derives it from the number of rounds"
            )
    return problems


def _values_given(library: str, part: LibrarySearchBase) -> list[tuple[str, str, list[Scalar]]]:
    """Each parameter a library's part names, where, and the values it can take there (a
    space's range gives none: only `choice` lists values)."""
    given = [(f"{library}.fixed", name, [value]) for name, value in part.fixed.items()]
    for i, grid in enumerate(part.grids()):
        where = f"{library}.grid" + (f"[{i}]" if isinstance(part.grid, list) else "")
        given.extend((where, name, list(values)) for name, values in grid.items())
    for search in part.searches():
        where = f"{library}.{search.key}.space"
        given.extend(
            (where, name, list(getattr(dist, "choice", []))) for name, dist in search.space.items()
        )
    return given


def coherence_problem(spec: StudySpec, task: Task | None, metric_task: Task | None) -> str | None:
    """What makes a spec whose parts are each valid unrunnable as a whole: a task the dataset
    contradicts, a metric of the other task, too many trials. `task` is the resolved task,
    `metric_task` the task of the spec's metric (both need scikit-learn's scorer table)."""
    known = spec.dataset_task()
    if spec.task is not None and known is not None and spec.task != known:
        return f"task: the dataset is a {known} dataset, not {spec.task}"
    if task is not None and metric_task is not None and metric_task != task:
        return f"metric: {spec.metric!r} is a {metric_task} metric"
    if task is not None:
        kinds = {"binary", "multiclass"} if task == "classification" else {"regression"}
        for library, part in spec.search.items():
            stop = part.early_stopping
            catalogue = catalogues().get(library)
            metric = stop and stop.metric and catalogue and catalogue.eval_metrics.get(stop.metric)
            if metric and not metric.kinds & kinds:
                return (
                    f"search: {library}.early_stopping.metric: {metric.name!r} is a "
                    f"{'/'.join(sorted(metric.kinds))} metric; the study is {task}"
                )
    total = spec.n_trials()
    if total > HARD_LIMIT:
        return f"search: {total:,} trials is over the hard limit of {HARD_LIMIT:,}"
    if total > LARGE_STUDY and not spec.allow_large:
        return (
            f"search: {total:,} trials is over the {LARGE_STUDY:,} limit; "
            "set allow_large: true to run it anyway"
        )
    return None


def _collect(
    problems: list[str], where: str, library: str, name: str, values: Iterable[Scalar]
) -> None:
    problems.extend(p for value in values if (p := param_problem(where, library, name, value)))


# Where pydantic's path names a union member ("int", "dict[str,list[...]]", "function-after")
# rather than a field the user wrote.
_TYPE_TAG = re.compile(
    rf"^(int|float|str|bool|none|function-.*|.*\[.*\]|{re.escape(DISTRIBUTION_TAG)}.*)$"
)
_EXPECTED = re.compile(r"^Input should be a valid (\w+)$")


def format_validation_error(error: ValidationError) -> str:
    """A pydantic error as one line of `field: problem` parts, in the spec's own terms."""
    located: dict[str, list[str]] = {}
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"] if not _TYPE_TAG.match(str(p)))
        # The discriminated union adds the variant's tag to the path; users never wrote it.
        loc = re.sub(r"\.(builtin|file|upload|make_classification|make_regression)\b", "", loc)
        located.setdefault(loc, []).append(item["msg"].removeprefix("Value error, "))
    # A union reports each member's failure: the deepest path is the one that explains it.
    deepest = {
        loc: msgs
        for loc, msgs in located.items()
        if not any(other.startswith(f"{loc}.") for other in located if loc)
    }
    parts = []
    for loc, msgs in deepest.items():
        expected = [m.group(1) for m in map(_EXPECTED.match, msgs) if m]
        if len(expected) > 1 and len(expected) == len(msgs):
            msgs = [f"Input should be a valid {', '.join(expected[:-1])} or {expected[-1]}"]
        for msg in dict.fromkeys(msgs):
            parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
