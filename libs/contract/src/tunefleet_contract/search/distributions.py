"""The distributions a search space draws from: one class per kind.

Everything that depends on the kind lives with it: how a uniform number in [0, 1) becomes a
value (`draw`), which values it can give (`contains`, `cardinality`), which values the parameter
catalogue must accept for all of them to pass (`extremes`), and how Optuna names it (`optuna`,
`suggest`). A spec writes one as `{uniform: [low, high]}`, `{loguniform: [low, high]}`,
`{int: [low, high], log: true}` or `{choice: [values...]}`, with an optional `when`.

Stored specs hold every kind's key, null but for one's (the shape of the single class these
replace): parsing accepts that shape and serializing writes it, so that a spec's canonical JSON,
and with it its study id and every trial id, stays what it was.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
    model_validator,
)
from tunefleet_contract.rules import Scalar

__all__ = [
    "BaseDistribution",
    "Choice",
    "Distribution",
    "IntRange",
    "LogUniform",
    "Uniform",
    "hashable",
]

Bounds = Annotated[list[float], Field(min_length=2, max_length=2)]
IntBounds = Annotated[list[int], Field(min_length=2, max_length=2)]
# A validation error's path names the kind as this tag; `spec.format_validation_error` drops it.
TAG_PREFIX = "distribution:"


def hashable(value: Scalar) -> tuple[str, Scalar]:
    """A value as a key that keeps 1, 1.0 and True apart: equal in Python, distinct in a spec
    (and in a trial id)."""
    return (type(value).__name__, value)


class BaseDistribution(BaseModel, ABC):
    """One parameter of a search space. `when` makes it conditional: it is drawn only when
    every named parameter (drawn earlier in the same point, or fixed) has the given value or
    one of the listed values."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    kind: ClassVar[str]
    # What a draw is: a float, an int, or (None) any of the listed values.
    draws: ClassVar[type | None]

    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    def condition(self) -> dict[str, list[Scalar]]:
        return {k: v if isinstance(v, list) else [v] for k, v in self.when.items()}

    def holds(self, point: Mapping[str, Scalar]) -> bool:
        """Whether the parameter is drawn, given the point drawn so far (`when`)."""
        return all(
            name in point and any(hashable(point[name]) == hashable(v) for v in values)
            for name, values in self.condition().items()
        )

    @abstractmethod
    def draw(self, u: float) -> Scalar:
        """The value at `u` in [0, 1): a uniform draw becomes a draw of this distribution."""

    @abstractmethod
    def contains(self, value: Scalar) -> bool:
        """Whether a draw can give this value (typed: 1, 1.0 and true differ)."""

    def cardinality(self) -> int | None:
        """How many distinct values it can take (None: continuous)."""
        return None

    @abstractmethod
    def extremes(self) -> list[Scalar]:
        """The values the catalogue must accept for every draw to pass: a range's ends (the
        catalogue's ranges are intervals), or every choice."""

    @abstractmethod
    def optuna(self) -> Any:
        """The Optuna distribution of this kind (optuna is imported by the caller's need)."""

    @abstractmethod
    def suggest(self, trial: Any, name: str) -> Scalar:
        """Ask an Optuna trial for this parameter."""

    @model_serializer(mode="wrap")
    def _stored_shape(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if info.exclude_defaults or info.exclude_none or info.exclude_unset:
            return data
        integer = "int" if info.by_alias else "integer"
        legacy = {"uniform": None, "loguniform": None, integer: None, "log": False, "choice": None}
        return {**legacy, **data}


def _ordered(kind: str, bounds: list[Any]) -> None:
    if not bounds[0] <= bounds[1]:
        raise ValueError(f"{kind}: low {bounds[0]} is above high {bounds[1]}")


class _Continuous(BaseDistribution, ABC):
    draws = float

    @property
    @abstractmethod
    def bounds(self) -> list[float]: ...

    def contains(self, value: Scalar) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        low, high = self.bounds
        return bool(math.isfinite(value) and low <= value <= high)

    def extremes(self) -> list[Scalar]:
        return list(self.bounds)


class Uniform(_Continuous):
    kind = "uniform"
    uniform: Bounds

    @model_validator(mode="after")
    def _valid(self) -> Uniform:
        _ordered(self.kind, self.uniform)
        return self

    @property
    def bounds(self) -> list[float]:
        return self.uniform

    def draw(self, u: float) -> Scalar:
        low, high = self.uniform
        return low + (high - low) * u

    def optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.uniform[0], self.uniform[1])

    def suggest(self, trial: Any, name: str) -> Scalar:
        value: float = trial.suggest_float(name, self.uniform[0], self.uniform[1])
        return value


class LogUniform(_Continuous):
    kind = "loguniform"
    loguniform: Bounds

    @model_validator(mode="after")
    def _valid(self) -> LogUniform:
        _ordered(self.kind, self.loguniform)
        if self.loguniform[0] <= 0:
            raise ValueError("loguniform: low must be > 0")
        return self

    @property
    def bounds(self) -> list[float]:
        return self.loguniform

    def draw(self, u: float) -> Scalar:
        low, high = self.loguniform
        return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)

    def optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.loguniform[0], self.loguniform[1], log=True)

    def suggest(self, trial: Any, name: str) -> Scalar:
        value: float = trial.suggest_float(name, self.loguniform[0], self.loguniform[1], log=True)
        return value


class IntRange(BaseDistribution):
    kind = "int"
    draws = int
    integer: IntBounds = Field(alias="int")
    log: bool = Field(default=False, description="sample log-uniformly")

    @model_validator(mode="after")
    def _valid(self) -> IntRange:
        _ordered(self.kind, self.integer)
        if self.log and self.integer[0] < 1:
            raise ValueError("int with log: true: low must be >= 1")
        return self

    def draw(self, u: float) -> Scalar:
        low, high = self.integer
        if self.log:
            value = math.exp(math.log(low) + (math.log(high + 1) - math.log(low)) * u)
            return min(high, max(low, math.floor(value)))
        return min(high, low + math.floor((high - low + 1) * u))

    def contains(self, value: Scalar) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.integer[0] <= value <= self.integer[1]

    def cardinality(self) -> int | None:
        return self.integer[1] - self.integer[0] + 1

    def extremes(self) -> list[Scalar]:
        return list(self.integer)

    def optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.integer[0], self.integer[1], log=self.log)

    def suggest(self, trial: Any, name: str) -> Scalar:
        value: int = trial.suggest_int(name, self.integer[0], self.integer[1], log=self.log)
        return value


class Choice(BaseDistribution):
    kind = "choice"
    draws = None
    choice: Annotated[list[Scalar], Field(min_length=1, max_length=100_000)]

    def draw(self, u: float) -> Scalar:
        return self.choice[min(len(self.choice) - 1, math.floor(len(self.choice) * u))]

    def contains(self, value: Scalar) -> bool:
        return hashable(value) in {hashable(v) for v in self.choice}

    def cardinality(self) -> int | None:
        return len(set(map(hashable, self.choice)))

    def extremes(self) -> list[Scalar]:
        return list(self.choice)

    def optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choice)

    def suggest(self, trial: Any, name: str) -> Scalar:
        value: Scalar = trial.suggest_categorical(name, self.choice)
        return value


# The keys a spec may name a kind by ("integer": how the stored shape spells `int`).
_KEYS = {
    "uniform": "uniform",
    "loguniform": "loguniform",
    "int": "int",
    "integer": "int",
    "choice": "choice",
}


def _given(value: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(kind for key, kind in _KEYS.items() if value.get(key) is not None))


def _one_kind(value: Any) -> Any:
    """The one kind a mapping names, with the other kinds' null keys (the stored shape) gone."""
    if not isinstance(value, Mapping):
        return value
    given = _given(value)
    if len(given) != 1:
        raise ValueError(
            "give exactly one of uniform: [low, high], loguniform: [low, high], "
            f"int: [low, high] or choice: [values...] (got {', '.join(given) or 'none'})"
        )
    kind = given[0]
    if kind != "int" and value.get("log") is True:
        raise ValueError("log: true applies to int only (use loguniform for floats)")
    return {
        key: item
        for key, item in value.items()
        if not (key in _KEYS and item is None) and not (key == "log" and item is False)
    }


def _tag(value: Any) -> str | None:
    if isinstance(value, BaseDistribution):
        return TAG_PREFIX + value.kind
    if isinstance(value, Mapping):
        given = _given(value)
        return TAG_PREFIX + given[0] if len(given) == 1 else None
    return None


Distribution = Annotated[
    Annotated[Uniform, Tag(TAG_PREFIX + "uniform")]
    | Annotated[LogUniform, Tag(TAG_PREFIX + "loguniform")]
    | Annotated[IntRange, Tag(TAG_PREFIX + "int")]
    | Annotated[Choice, Tag(TAG_PREFIX + "choice")],
    Discriminator(_tag),
    BeforeValidator(_one_kind),
]
