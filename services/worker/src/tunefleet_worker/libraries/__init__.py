"""The worker's registry of model libraries: one module per library, each with a `LIBRARY`.

A module says how to build the library's scikit-learn estimator and, where it can, how to fit
it on a fold while reusing the fold cache's prepared structures (its cache keys live with it).
A new library is one new module here, its catalogue in `tunefleet_contract.libraries`, and its
model loader in the client's `tunefleet.estimators`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from tunefleet_contract.params import Scalar
from tunefleet_contract.plugins import discover
from tunefleet_contract.spec import Task

from tunefleet_worker.foldcache import Fold, FoldSet

__all__ = [
    "AfterRound",
    "ModelLibrary",
    "ShouldStop",
    "model_libraries",
    "model_library",
    "structure_key",
]


# Called with a fold's validation metric after each round; a round (1-based, the best) stops.
AfterRound = Callable[[float], "int | None"]
# Asked after each round of a fit that can be cut (`ModelLibrary.fit_stoppable`): True ends it.
ShouldStop = Callable[[], bool]


class ModelLibrary:
    """What the worker knows of one model library."""

    name: ClassVar[str]  # the catalogue's name for it
    distribution: ClassVar[str]  # the distribution whose version each result records
    modules: ClassVar[tuple[str, ...]] = ()  # imported at start-up, not in the first trial
    # True for a library that refuses NaN in a categorical feature and takes missing as a
    # level of its own (`Dataset.with_missing_category`).
    missing_category: ClassVar[bool] = False

    def make_estimator(
        self, task: Task, kwargs: dict[str, Any], categorical: Sequence[str] = ()
    ) -> Any:
        """The scikit-learn estimator a trial trains (kwargs include the thread count);
        `categorical` names the table's categorical columns, for the library's native handling."""
        raise NotImplementedError(f"{self.name} builds no estimator")

    # The file extension of the library's native model format (None: it stores no model).
    model_format: ClassVar[str | None] = None

    def save_model(self, estimator: Any, path: Path) -> None:
        """Write the fitted estimator's model to `path` in the library's own format."""
        raise NotImplementedError(f"{self.name} stores no model")

    def fit(self, estimator: Any, fold: Fold, folds: FoldSet, **fit_kwargs: Any) -> None:
        """Fit on one fold; a library overrides this to reuse what the fold cache holds.
        `fit_kwargs` go to the estimator's `fit` (early stopping's evaluation set)."""
        estimator.fit(fold.X_train, fold.y_train, **fit_kwargs)

    # True where the library's training loop can be observed round by round and stopped
    # (a callback): early stopping then advances every fold together, as the library's own
    # cv does. False: each fold trains to the limit and its evaluation history is read.
    lockstep: ClassVar[bool] = False

    def fit_observed(
        self,
        estimator: Any,
        fold: Fold,
        folds: FoldSet,
        metric: str,
        after_round: AfterRound,
    ) -> None:
        """Fit on one fold with its test part as the evaluation set, giving `after_round` the
        value of the library's evaluation `metric` after each round. Where `lockstep`, training
        stops after the round for which `after_round` returns a round (the best, 1-based);
        otherwise every round is trained and `after_round` is given the history afterwards."""
        raise NotImplementedError(f"{self.name} has no rounds to stop")

    def fit_stoppable(
        self,
        estimator: Any,
        fold: Fold,
        folds: FoldSet,
        stop: ShouldStop,
        init_model: Path | None = None,
    ) -> None:
        """Fit on one fold, asking `stop` after each round: once it says yes, training ends
        after that round, and the model holds every round trained (`rounds_trained`). With
        `init_model` (a booster this library saved, `save_model`, from such a cut), training
        continues from it for the estimator's own number of rounds: those left."""
        raise NotImplementedError(f"{self.name} cannot stop between rounds")

    def rounds_trained(self, estimator: Any) -> int:
        """Boosting rounds in the fitted estimator's model (a continued one: all of them)."""
        raise NotImplementedError(f"{self.name} has no rounds")

    def continued_params(self, init_model: Path) -> dict[str, Any]:
        """Parameters a continuation from `init_model` must take from it, so that it boosts as
        the cut fit did (CatBoost: the learning rate it chose for the whole number of rounds)."""
        return {}

    def cut(self, rounds: int) -> dict[str, Any]:
        """The keyword the estimator's predict methods take to use only the first `rounds`
        boosting rounds (for families, `tunefleet_worker.families`)."""
        raise NotImplementedError(f"{self.name} has no rounds to cut")

    def simulate_fold(
        self, params: Mapping[str, Scalar], fold: int, folds: int, sleep: Callable[[float], object]
    ) -> float | None:
        """Fold `fold`'s score (of `folds`) without an estimator, for a library that trains
        nothing; None for every real one."""
        return None


def structure_key(
    library: str, fold: Fold, params: Mapping[str, Any], skip: frozenset[str]
) -> Hashable:
    """A fold-cache key from a trial's parameters less those (`skip`) that only steer the
    boosting, never the prepared training set: trials that differ only in those share it."""
    return (library, fold.index, repr(sorted((k, v) for k, v in params.items() if k not in skip)))


@cache
def model_libraries() -> Mapping[str, ModelLibrary]:
    """Every library this worker runs, by name."""
    return discover(__name__, __path__, "LIBRARY", ModelLibrary)


def model_library(name: str) -> ModelLibrary:
    library = model_libraries().get(name)
    if library is None:
        raise ValueError(f"no estimator for library {name!r}")
    return library
