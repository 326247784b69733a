"""The building blocks of the parameter catalogue: a rule per parameter, and what the catalogue
knows of one library (`LibraryCatalogue`). Each library's catalogue is a module of
`tunefleet_contract.libraries`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "EVAL_KINDS",
    "FRACTION",
    "FREE_STR",
    "NONNEG",
    "RATE",
    "SEED",
    "EvalKind",
    "EvalMetric",
    "LibraryCatalogue",
    "ParamError",
    "ParamRule",
    "Scalar",
    "SpecError",
    "choice_rule",
    "eval_metrics",
    "float_rule",
    "int_rule",
]

Scalar = int | float | str | bool | None

# What an evaluation metric is computed for: the worker knows which once it has the data
# (two classes or more), the spec only the task.
EvalKind = str
EVAL_KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class EvalMetric:
    """One of a library's own evaluation metrics, as early stopping judges a curve by it."""

    name: str
    greater_is_better: bool
    kinds: frozenset[EvalKind]


class ParamError(ValueError):
    """A parameter name or value that the library would not accept."""


class SpecError(ValueError):
    """A spec that cannot be run; the message names each field and what is wrong with it."""


@dataclass(frozen=True)
class ParamRule:
    kind: type  # int, float, str or bool
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    low_open: bool = False

    def check(self, name: str, value: Scalar) -> None:
        if value is None:
            if self.nullable:
                return
            raise ParamError(f"{name}: null is not allowed")
        # bool is a subclass of int in Python; a JSON `true` is never a number here.
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParamError(f"{name}: expected true or false, got {value!r}")
            return
        if self.kind is str:
            if not isinstance(value, str):
                raise ParamError(f"{name}: expected a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                raise ParamError(f"{name}: {value!r} is not one of {', '.join(self.choices)}")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(f"{name}: expected {self.kind.__name__}, got {value!r}")
        if self.kind is int and not isinstance(value, int):
            raise ParamError(f"{name}: expected an integer, got {value!r}")
        if not math.isfinite(value):
            raise ParamError(f"{name}: {value!r} is not a finite number")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            bound = ">" if self.low_open else ">="
            raise ParamError(f"{name}: {value!r} must be {bound} {self.low:g}")
        if self.high is not None and value > self.high:
            raise ParamError(f"{name}: {value!r} must be <= {self.high:g}")


def int_rule(
    low: float | None = None, high: float | None = None, *, nullable: bool = False
) -> ParamRule:
    return ParamRule(int, low, high, nullable=nullable)


def float_rule(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    nullable: bool = False,
) -> ParamRule:
    return ParamRule(float, low, high, low_open=low_open, nullable=nullable)


def choice_rule(*choices: str, nullable: bool = False) -> ParamRule:
    return ParamRule(str, choices=choices, nullable=nullable)


FRACTION = float_rule(0.0, 1.0, low_open=True)
RATE = float_rule(0.0, low_open=True)
NONNEG = float_rule(0.0)
SEED = int_rule(0, 2**31 - 1)
FREE_STR = ParamRule(str)


@dataclass(frozen=True)
class LibraryCatalogue:
    """What a study may set for one library, checked before anything is published."""

    name: str
    params: Mapping[str, ParamRule]
    # The parameter the library takes its thread count from. The platform sets it from the
    # worker's TUNEFLEET_WORKER_THREADS; a spec may ask for more, up to the worker's limit.
    thread_param: str
    # Names the platform controls: threads under another name, logging, anything writing files.
    platform: frozenset[str] = frozenset()
    # Families: the parameter(s) counting boosting rounds, of which a trial sets one; values of
    # other parameters under which a model of N rounds cut after n is not the model trained
    # for n rounds; parameters that must be set for it to be (see `rounds_of`).
    rounds: tuple[str, ...] = ()
    cut_not_exact: Mapping[str, frozenset[Scalar]] = field(default_factory=dict)
    cut_needs: tuple[str, ...] = ()
    # Early stopping: the library's evaluation metrics a curve may be judged by, the one that
    # matches each scikit-learn scorer (per kind), and the loss used where none matches.
    eval_metrics: Mapping[str, EvalMetric] = field(default_factory=dict)
    scorer_metrics: Mapping[str, Mapping[EvalKind, str]] = field(default_factory=dict)
    loss_metrics: Mapping[EvalKind, str] = field(default_factory=dict)
    # False where a callback cannot hold a fold back (CatBoost): every fold trains to the limit
    # and the curve is known only then, so no rule can save rounds by stopping a trial.
    folds_stop_together: bool = True

    def eval_metric(self, scorer: str, kind: EvalKind, override: str | None = None) -> EvalMetric:
        """The metric early stopping judges the validation curve by: `override` if given, else
        the one matching the study's scorer, else the library's loss for the kind."""
        name = override or self.scorer_metrics.get(scorer, {}).get(kind) or self.loss_metrics[kind]
        metric = self.eval_metrics[name]
        if kind not in metric.kinds:
            raise ValueError(
                f"{self.name} eval metric {name!r} is for {', '.join(sorted(metric.kinds))} "
                f"models, not {kind}"
            )
        return metric

    def rounds_of(self, params: Mapping[str, Scalar]) -> tuple[str, int] | None:
        """The trial's rounds parameter and value where a longer model of the same parameters,
        cut after that many rounds, predicts bit for bit as this trial's own model; None where
        it does not, or the trial names no rounds."""
        names = [name for name in self.rounds if name in params]
        if len(names) != 1:
            return None
        value = params[names[0]]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return None
        if any(params.get(k) in values for k, values in self.cut_not_exact.items()):
            return None
        if any(params.get(name) is None for name in self.cut_needs):
            return None
        return names[0], value


def eval_metrics(*metrics: tuple[str, bool, str]) -> dict[str, EvalMetric]:
    """A catalogue's metrics from `(name, greater_is_better, "kind kind ...")`."""
    return {name: EvalMetric(name, up, frozenset(kinds.split())) for name, up, kinds in metrics}
