"""What every sampled search's section of a spec has: `n_trials` points of a `space`.

`SearchSpec` is the schema every search kind's section extends (`random`, `tpe`, `asha`, ...):
its space, the checks of the space against the parameter catalogue, the test of whether it can
have drawn a point, and for the read side of plans stored before decisions named their search,
the inference of which search a trial was. `sample_space` is the seeded stream of points the
kinds draw from.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from tunefleet_contract.params import LIBRARIES, ParamError, check_param, param_problem
from tunefleet_contract.rules import Scalar, SpecError
from tunefleet_contract.search.distributions import Distribution, hashable

__all__ = ["HARD_LIMIT", "AdaptiveSpec", "SearchSpec", "checked", "sample_space"]

# No study has more trials than this, whatever `allow_large` says.
HARD_LIMIT = 20_000_000

Params = Mapping[str, Scalar]


class SearchSpec(BaseModel):
    """`n_trials` distinct points drawn from `space`, seeded (by default with cv.seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    key: ClassVar[str]  # the section's key in a library's search (random, tpe, asha, ...)
    adaptive: ClassVar[bool] = False  # decides as results arrive

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

    def drew(self, point: Params, fixed: Params) -> bool:
        """Whether this search can have drawn `point` (fixed parameters included): every fixed
        parameter as given, every parameter of the space present exactly when its condition
        holds and with a value it can draw, nothing else."""
        if any(
            name not in point or hashable(point[name]) != hashable(value)
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

    def seed_or(self, default: int) -> int:
        return self.seed if self.seed is not None else default

    # -- checks against the parameter catalogue (at submit and in the planner) --------------

    def problems(self, library: str, fixed: Params) -> list[str]:
        """Every value a distribution can produce must pass the catalogue: checking both ends
        of a range suffices (the catalogue's ranges are intervals), and a range of floats is
        refused for a parameter that takes integers, booleans or strings."""
        where = f"{library}.{self.key}.space"
        found: list[str] = []
        for name, dist in self.space.items():
            if name in fixed:
                found.append(f"{where}.{name}: also given in fixed")
            rule = LIBRARIES[library].get(name)
            if rule is not None and dist.draws is float and rule.kind is not float:
                what = "an integer" if rule.kind is int else f"a {rule.kind.__name__}"
                use = "int: [low, high]" if rule.kind is int else "choice: [values...]"
                found.append(f"{where}.{name}: {what} parameter; use {use}")
            else:
                found.extend(
                    p for v in dist.extremes() if (p := param_problem(where, library, name, v))
                )
            for other, values in dist.condition().items():
                if other == name:
                    found.append(f"{where}.{name}.when: a parameter cannot depend on itself")
                elif other in fixed:
                    at = f"{where}.{name}.when"
                    found.extend(p for v in values if (p := param_problem(at, library, other, v)))
                elif other not in self.space:
                    found.append(
                        f"{where}.{name}.when: {other!r} is neither in the space nor fixed"
                    )
        try:
            self.order()
        except ValueError as exc:
            found.append(f"{where}.{exc}")
            return found
        too_many = self.too_many_trials()
        if too_many is not None:
            found.append(f"{library}.{self.key}.n_trials: {too_many}")
        return found

    def too_many_trials(self) -> str | None:
        """Why `n_trials` cannot be reached in this space (None: it can): a search of distinct
        points has no more trials than the space has points."""
        bound = self.max_distinct()
        if bound is None or self.n_trials <= bound:
            return None
        return (
            f"{self.n_trials} is more than the at most {bound} distinct points of this space "
            "(use a grid to run them all)"
        )

    # -- the read side: which trials are this search's -----------------------------------

    def owns(self, library: str, params: Params, fixed: Params) -> bool:
        """Whether this search can have decided a trial of `library` with these parameters:
        how the read side tells a trial's search where its plan does not say (plans stored
        before each decision named its search)."""
        return self.drew(params, fixed)

    def rung_rounds(self, library: str) -> tuple[int, ...]:
        """The rounds of each rung, lowest first, for a search with rungs (none here)."""
        return ()

    def rounds_param(self, library: str) -> str | None:
        """The parameter its rungs set (None: no rungs)."""
        return None

    def rung(self, library: str, params: Params) -> int | None:
        """The rung a trial of these parameters is at (None: no rungs, or not at one)."""
        rounds = self.rounds_param(library)
        value = params.get(rounds) if rounds is not None else None
        rungs = self.rung_rounds(library)
        if isinstance(value, bool) or not isinstance(value, int) or value not in rungs:
            return None
        return rungs.index(value)


class AdaptiveSpec(SearchSpec):
    """A search that decides its trials as results arrive (the planner asks it after each):
    `n_trials` trials in all, at most `max_in_flight` of them decided and without a result at
    any time, so that results still steer what is decided next."""

    adaptive: ClassVar[bool] = True

    max_in_flight: int = Field(default=4, ge=1, le=10_000)


def sample_space(
    search: SearchSpec, fixed: Params, seed: int, library: str, stream: str = ""
) -> Iterator[dict[str, Scalar]]:
    """Endless seeded draws (fixed parameters included); the caller keeps the distinct ones.

    The stream depends only on the seed, the library's name, `stream` (one per kind of search,
    so that two searches of one library with one seed draw different points) and its space:
    adding a library to a study does not change another library's trials. Only
    `Random.random()` is used: its sequence for a seed is stable across Python versions, unlike
    randrange or choice, so a spec samples the same trials everywhere.
    """
    rng = random.Random(f"tunefleet:{seed}:{library}" + (f":{stream}" if stream else ""))
    order = search.order()
    while True:
        point: dict[str, Scalar] = dict(fixed)
        for name in order:
            dist = search.space[name]
            if dist.holds(point):
                point[name] = dist.draw(rng.random())
        yield point


def checked(library: str, key: str, point: dict[str, Any]) -> dict[str, Scalar]:
    """The point, once every value passed the catalogue. The spec's bounds were checked at
    submit; this checks what a search drew (a library's sampler may round)."""
    for name, value in point.items():
        try:
            check_param(library, name, value)
        except ParamError as exc:
            raise SpecError(f"search.{library}.{key} drew an invalid value: {exc}") from None
    return point
