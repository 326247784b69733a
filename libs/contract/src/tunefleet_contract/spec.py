"""The study spec's schema: what a user submits, and what messages carry.

Validating a spec here checks its structure only (types, fields, the shape of each
distribution), so that decoding a message that embeds one stays cheap. The checks that need a
library or a catalogue (scikit-learn's scorer names, each library's parameters, the study's
size) are `spec_problems` below plus the scorer check in `tunefleet_runtime.validation`: they
run once, at submit and in the planner.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from tunefleet_contract.documents import check_document
from tunefleet_contract.params import LIBRARIES, ParamError, Scalar, check_param

__all__ = [
    "BUILTIN_DATASETS",
    "LARGE_STUDY",
    "ASHASearch",
    "AdaptiveSearch",
    "BuiltinDataset",
    "CVSpec",
    "DatasetSpec",
    "Distribution",
    "FileDataset",
    "LibrarySearch",
    "RandomSearch",
    "SpecError",
    "StudySpec",
    "SyntheticDataset",
    "TPESearch",
    "UploadDataset",
    "asha_rounds",
    "coherence_problem",
    "default_metric",
    "format_validation_error",
    "search_problems",
]

# Studies above this many trials are refused unless the spec says `allow_large: true`: a typo in
# a grid (one list too many) should cost a message, not a day of cluster time.
LARGE_STUDY = 100_000
HARD_LIMIT = 20_000_000

BUILTIN_DATASETS: Mapping[str, Literal["classification", "regression"]] = {
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
    "digits": "classification",
    "diabetes": "regression",
}

Task = Literal["classification", "regression"]


class SpecError(ValueError):
    """A spec that cannot be run; the message names each field and what is wrong with it."""


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


ParamGridDict = dict[str, Annotated[list[Scalar], Field(min_length=1, max_length=100_000)]]
Bounds = Annotated[list[float], Field(min_length=2, max_length=2)]
IntBounds = Annotated[list[int], Field(min_length=2, max_length=2)]


class Distribution(_Model):
    """One parameter of a random search: exactly one of uniform, loguniform, int or choice.

    `when` makes it conditional: the parameter is sampled only when every named parameter
    (sampled earlier in the same draw, or fixed) has the given value or one of the listed values.
    """

    model_config = ConfigDict(populate_by_name=True)

    uniform: Bounds | None = None
    loguniform: Bounds | None = None
    integer: IntBounds | None = Field(default=None, alias="int")
    log: bool = Field(default=False, description="int only: sample log-uniformly")
    choice: Annotated[list[Scalar], Field(min_length=1, max_length=100_000)] | None = None
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        given = [k for k in ("uniform", "loguniform", "int", "choice") if self.bounds_of(k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of uniform: [low, high], loguniform: [low, high], "
                f"int: [low, high] or choice: [values...] (got {', '.join(given) or 'none'})"
            )
        if self.log and self.integer is None:
            raise ValueError("log: true applies to int only (use loguniform for floats)")
        for kind in ("uniform", "loguniform", "int"):
            bounds = self.bounds_of(kind)
            if bounds is not None and not bounds[0] <= bounds[1]:
                raise ValueError(f"{kind}: low {bounds[0]} is above high {bounds[1]}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform: low must be > 0")
        if self.integer is not None and self.log and self.integer[0] < 1:
            raise ValueError("int with log: true: low must be >= 1")
        return self

    def bounds_of(self, kind: str) -> list[Any] | None:
        return {
            "uniform": self.uniform,
            "loguniform": self.loguniform,
            "int": self.integer,
            "choice": self.choice,
        }[kind]

    @property
    def kind(self) -> Literal["uniform", "loguniform", "int", "choice"]:
        if self.uniform is not None:
            return "uniform"
        if self.loguniform is not None:
            return "loguniform"
        return "int" if self.integer is not None else "choice"

    def condition(self) -> dict[str, list[Scalar]]:
        return {k: v if isinstance(v, list) else [v] for k, v in self.when.items()}

    def holds(self, point: Mapping[str, Scalar]) -> bool:
        """Whether the parameter is drawn, given the point drawn so far (`when`)."""
        return all(
            name in point and any(_hashable(point[name]) == _hashable(v) for v in values)
            for name, values in self.condition().items()
        )

    def contains(self, value: Scalar) -> bool:
        """Whether a draw can give this value (typed: 1, 1.0 and true differ)."""
        if self.choice is not None:
            return _hashable(value) in {_hashable(v) for v in self.choice}
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer is not None:
            low, high = self.integer
            return isinstance(value, int) and low <= value <= high
        bounds = self.uniform if self.uniform is not None else self.loguniform
        assert bounds is not None  # exactly one kind
        return bool(math.isfinite(value) and bounds[0] <= value <= bounds[1])

    def cardinality(self) -> int | None:
        """How many distinct values it can take (None: continuous)."""
        if self.choice is not None:
            return len(set(map(_hashable, self.choice)))
        if self.integer is not None:
            return self.integer[1] - self.integer[0] + 1
        return None


def _hashable(value: Scalar) -> tuple[str, Scalar]:
    # 1, 1.0 and True are equal in Python and distinct in a spec (and in a trial id).
    return (type(value).__name__, value)


class RandomSearch(_Model):
    """`n_trials` distinct points drawn from `space`, seeded (by default with cv.seed)."""

    n_trials: int = Field(ge=1, le=HARD_LIMIT)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    space: dict[str, Distribution] = Field(min_length=1)

    def order(self) -> list[str]:
        """The space's parameters, each after the parameters its `when` names (sorted ties)."""
        placed: list[str] = []
        pending = dict(sorted(self.space.items()))
        while pending:
            ready = [
                name
                for name, dist in pending.items()
                if all(dep in placed or dep not in self.space for dep in dist.when)
            ]
            if not ready:
                raise ValueError(f"when: conditions form a cycle among {', '.join(pending)}")
            placed.extend(ready)
            for name in ready:
                del pending[name]
        return placed

    def drew(self, point: Mapping[str, Scalar], fixed: Mapping[str, Scalar]) -> bool:
        """Whether this search can have drawn `point` (fixed parameters included): every fixed
        parameter as given, every parameter of the space present exactly when its condition
        holds and with a value it can draw, nothing else."""
        if any(
            name not in point or _hashable(point[name]) != _hashable(value)
            for name, value in fixed.items()
        ):
            return False
        drawn: dict[str, Scalar] = dict(fixed)
        for name in self.order():
            dist = self.space[name]
            if dist.holds(drawn) != (name in point):
                return False
            if name in point:
                if not dist.contains(point[name]):
                    return False
                drawn[name] = point[name]
        return set(point) <= set(fixed) | set(self.space)

    def max_distinct(self) -> int | None:
        """An upper bound on distinct points (None: unbounded, some parameter is continuous)."""
        total = 1
        for dist in self.space.values():
            count = dist.cardinality()
            if count is None:
                return None
            # A conditional parameter may also be absent: one more outcome.
            total *= count + (1 if dist.when else 0)
        return total


class AdaptiveSearch(RandomSearch):
    """A search that decides its trials as results arrive (the planner asks it after each):
    `n_trials` trials in all, at most `max_in_flight` of them decided and without a result at
    any time, so that results still steer what is decided next."""

    max_in_flight: int = Field(default=4, ge=1, le=10_000)


class TPESearch(AdaptiveSearch):
    """Bayesian search with Optuna's TPE sampler (constant liar for the trials in flight); the
    first `n_startup` trials are seeded random draws."""

    n_startup: int = Field(default=10, ge=1, le=10_000)


class ASHASearch(AdaptiveSearch):
    """Asynchronous successive halving: configurations drawn from `space` start at `min_rounds`
    boosting rounds; the best 1/`eta` of those scored at a rung go on to `eta` times the rounds,
    up to `max_rounds`. Every configuration at every rung is a trial of its own, and `n_trials`
    counts them all. `rounds` names the parameter (default: the library's rounds parameter)."""

    min_rounds: int = Field(ge=1, le=1_000_000)
    max_rounds: int = Field(ge=1, le=1_000_000)
    eta: int = Field(default=3, ge=2, le=100)
    rounds: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _rungs(self) -> ASHASearch:
        if self.max_rounds < self.min_rounds * self.eta:
            raise ValueError(
                f"max_rounds {self.max_rounds} leaves no rung above min_rounds "
                f"{self.min_rounds} (it must be at least min_rounds * eta = "
                f"{self.min_rounds * self.eta})"
            )
        return self

    def rungs(self) -> list[int]:
        """The rounds of each rung, lowest first: min_rounds times powers of eta, and
        max_rounds on top."""
        found = [self.min_rounds]
        while found[-1] * self.eta < self.max_rounds:
            found.append(found[-1] * self.eta)
        if found[-1] != self.max_rounds:
            found.append(self.max_rounds)
        return found


class LibrarySearch(_Model):
    """One library's part of a study: fixed parameters, a scikit-learn ParameterGrid, a random
    search and an adaptive one (TPE or ASHA), each optional. Without a search, an empty grid is
    one trial of the fixed parameters."""

    fixed: dict[str, Scalar] = Field(default_factory=dict)
    grid: ParamGridDict | list[ParamGridDict] = Field(default_factory=dict)
    random: RandomSearch | None = None
    tpe: TPESearch | None = None
    asha: ASHASearch | None = None

    @model_validator(mode="after")
    def _one_adaptive(self) -> LibrarySearch:
        if self.tpe is not None and self.asha is not None:
            raise ValueError("give tpe or asha, not both (one adaptive search per library)")
        return self

    @property
    def adaptive(self) -> TPESearch | ASHASearch | None:
        return self.tpe if self.tpe is not None else self.asha

    def searches(self) -> list[tuple[str, RandomSearch]]:
        """The sampled searches by their key (random, tpe, asha), in that order."""
        given = (("random", self.random), ("tpe", self.tpe), ("asha", self.asha))
        return [(key, search) for key, search in given if search is not None]

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
        return self.grid_size() + sum(search.n_trials for _, search in self.searches())


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
        """Whether results decide some of its trials (a library has tpe or asha)."""
        return any(part.adaptive is not None for part in self.search.values())

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json")
        for part in data["search"].values():
            # Added after studies were stored: left out when not given, so that a spec that
            # does not use them keeps the id (and its trials' ids) it always had.
            for key in ("tpe", "asha"):
                if part.get(key) is None:
                    del part[key]
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
            _collect(problems, f"{library}.fixed", library, name, scalar)
        for i, grid in enumerate(part.grids()):
            where = f"{library}.grid" + (f"[{i}]" if isinstance(part.grid, list) else "")
            for name, values in grid.items():
                if name in part.fixed:
                    problems.append(f"{where}.{name}: also given in fixed")
                for scalar in values:
                    _collect(problems, where, library, name, scalar)
        for key, sampled in part.searches():
            _check_space(problems, f"{library}.{key}", library, part, sampled)
        if part.asha is not None:
            _check_asha(problems, f"{library}.asha", library, part, part.asha)
    return problems


def coherence_problem(spec: StudySpec, task: Task | None, metric_task: Task | None) -> str | None:
    """What makes a spec whose parts are each valid unrunnable as a whole: a task the dataset
    contradicts, a metric of the other task, too many trials. `task` is the resolved task,
    `metric_task` the task of the spec's metric (both need scikit-learn's scorer table)."""
    known = spec.dataset_task()
    if spec.task is not None and known is not None and spec.task != known:
        return f"task: the dataset is a {known} dataset, not {spec.task}"
    if task is not None and metric_task is not None and metric_task != task:
        return f"metric: {spec.metric!r} is a {metric_task} metric"
    total = spec.n_trials()
    if total > HARD_LIMIT:
        return f"search: {total:,} trials is over the hard limit of {HARD_LIMIT:,}"
    if total > LARGE_STUDY and not spec.allow_large:
        return (
            f"search: {total:,} trials is over the {LARGE_STUDY:,} limit; "
            "set allow_large: true to run it anyway"
        )
    return None


def _collect(problems: list[str], where: str, library: str, name: str, value: Scalar) -> None:
    try:
        check_param(library, name, value)
    except ParamError as exc:
        problems.append(f"{where}.{exc}")


def _check_asha(
    problems: list[str], where: str, library: str, part: LibrarySearch, asha: ASHASearch
) -> None:
    """The resource must be a rounds parameter of the library, set by the rungs only."""
    from tunefleet_contract.libraries import catalogues  # the registry imports this module

    known = catalogues()[library].rounds
    name = asha.rounds or (known[0] if known else None)
    if name is None:
        problems.append(f"{where}.rounds: {library} has no boosting-rounds parameter")
        return
    if name not in known:
        problems.append(
            f"{where}.rounds: {name!r} is not a boosting-rounds parameter of {library} "
            f"(choose from {', '.join(known)})"
        )
        return
    for other in known:
        if other in asha.space or other in part.fixed:
            at = "space" if other in asha.space else "fixed"
            problems.append(f"{where}: {other!r} in {at}; the rungs set the rounds ({name})")
    for rounds in asha.rungs():
        _collect(problems, where, library, name, rounds)


def asha_rounds(library: str, asha: ASHASearch) -> str:
    """The parameter an ASHA search's rungs set (validated by `search_problems`)."""
    from tunefleet_contract.libraries import catalogues  # the registry imports this module

    return asha.rounds or catalogues()[library].rounds[0]


def _check_space(
    problems: list[str], where: str, library: str, part: LibrarySearch, search: RandomSearch
) -> None:
    """Every value a distribution can produce must pass the catalogue: checking both ends of a
    range suffices (the catalogue's ranges are intervals), plus one non-integral value for
    uniform/loguniform, which an integer parameter must refuse."""
    space = search.space
    for name, dist in space.items():
        at = f"{where}.space"
        if name in part.fixed:
            problems.append(f"{at}.{name}: also given in fixed")
        if dist.choice is not None:
            for scalar in dist.choice:
                _collect(problems, at, library, name, scalar)
        else:
            rule = LIBRARIES[library].get(name)
            if rule is not None and rule.kind is not float and dist.kind != "int":
                what = "an integer" if rule.kind is int else f"a {rule.kind.__name__}"
                problems.append(
                    f"{at}.{name}: {what} parameter; use "
                    + ("int: [low, high]" if rule.kind is int else "choice: [values...]")
                )
                continue
            for scalar in dist.bounds_of(dist.kind) or []:
                _collect(problems, at, library, name, scalar)
        for other, values in dist.condition().items():
            if other == name:
                problems.append(f"{at}.{name}.when: a parameter cannot depend on itself")
            elif other in part.fixed:
                for scalar in values:
                    _collect(problems, f"{at}.{name}.when", library, other, scalar)
            elif other not in space:
                problems.append(f"{at}.{name}.when: {other!r} is neither in the space nor fixed")
    try:
        search.order()
    except ValueError as exc:
        problems.append(f"{where}.space.{exc}")
        return
    bound = search.max_distinct()
    if bound is not None and search.n_trials > bound:
        problems.append(
            f"{where}.n_trials: {search.n_trials} is more than the at most {bound} "
            "distinct points of this space (use a grid to run them all)"
        )


# Where pydantic's path names a union member ("int", "dict[str,list[...]]", "function-after")
# rather than a field the user wrote.
_TYPE_TAG = re.compile(r"^(int|float|str|bool|none|function-.*|.*\[.*\])$")
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
