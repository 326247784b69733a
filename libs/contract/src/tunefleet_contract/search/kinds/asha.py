"""Asynchronous successive halving (ASHA, Li et al. 2020) with boosting rounds as the budget.

A configuration is a point of the space; at rung k it is the trial of that point with
`rungs()[k]` rounds, a trial of the study like any other (its own id, its own result: exactly
the score of a model trained for that many rounds), recorded in the plan with its rung. Each
decision takes, as ASHA's `get_job` does, the best promotion there is, from the highest rung
down: a configuration in the top 1/eta (rounded up) of those scored at its rung that has not
gone up yet; when there is none, a new configuration at the lowest rung, the next of a seeded
stream of draws. No rung waits to fill, so no worker waits for another's result.

A promoted configuration is trained again from the start at its new rung: continuing the
lower rung's model would save those rounds, but neither of the three libraries guarantees the
continued model to be bit for bit the one trained at once (row and column subsampling draw
from a generator that a continued fit restarts), so its score would not be the trial's score.
The cost: a configuration that reaches rung k has been trained for rungs[0] + ... + rungs[k]
rounds, at most eta / (eta - 1) times rungs[k] (1.5 times with eta = 3).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import ClassVar

from pydantic import Field, PrivateAttr, model_validator
from tunefleet_contract.libraries import catalogues
from tunefleet_contract.params import param_problem
from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.adaptive import AdaptiveStrategy
from tunefleet_contract.search.ids import configuration
from tunefleet_contract.search.space import AdaptiveSpec
from tunefleet_contract.search.strategy import Decision, SearchContext, SearchKind

__all__ = ["KIND", "ASHASpec", "ASHAStrategy"]

Params = Mapping[str, Scalar]


class ASHASpec(AdaptiveSpec):
    """Configurations drawn from `space` start at `min_rounds` boosting rounds; the best 1/`eta`
    of those scored at a rung go on to `eta` times the rounds, up to `max_rounds`. Every
    configuration at every rung is a trial of its own, and `n_trials` counts them all.
    `rounds` names the parameter (default: the library's rounds parameter)."""

    key: ClassVar[str] = "asha"

    min_rounds: int = Field(ge=1, le=1_000_000)
    max_rounds: int = Field(ge=1, le=1_000_000)
    eta: int = Field(default=3, ge=2, le=100)
    rounds: str | None = Field(default=None, min_length=1, max_length=200)
    # The rounds of each rung, lowest first (`rungs`): computed once, asked for every trial.
    _rungs: tuple[int, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _has_rungs(self) -> ASHASpec:
        if self.max_rounds < self.min_rounds * self.eta:
            raise ValueError(
                f"max_rounds {self.max_rounds} leaves no rung above min_rounds "
                f"{self.min_rounds} (it must be at least min_rounds * eta = "
                f"{self.min_rounds * self.eta})"
            )
        found = [self.min_rounds]
        while found[-1] * self.eta < self.max_rounds:
            found.append(found[-1] * self.eta)
        if found[-1] != self.max_rounds:
            found.append(self.max_rounds)
        self._rungs = tuple(found)
        return self

    def rungs(self) -> list[int]:
        """The rounds of each rung, lowest first: min_rounds times powers of eta, and
        max_rounds on top."""
        return list(self._rungs)

    def rung_rounds(self, library: str) -> tuple[int, ...]:
        return self._rungs

    def rounds_param(self, library: str) -> str:
        """The parameter the rungs set (checked against the catalogue by `problems`)."""
        return self.rounds or catalogues()[library].rounds[0]

    def reachable(self, configurations: int) -> list[int]:
        """Trials per rung that a run over `configurations` distinct configurations reaches
        for certain: all of them at rung 0, then the top 1/eta (rounded up) of each rung one
        rung up. (Results that arrive early can promote a few more; failures promote fewer.)"""
        found = [configurations]
        for _ in self._rungs[1:]:
            found.append(math.ceil(found[-1] / self.eta))
        return found

    def too_many_trials(self) -> str | None:
        """Every rung is a trial: a space of N configurations reaches N trials at rung 0 and
        the promoted ones above it, so `n_trials` is bounded by that sum, not by N."""
        bound = self.max_distinct()
        if bound is None:
            return None
        per_rung = self.reachable(bound)
        if self.n_trials <= sum(per_rung):
            return None
        return (
            f"{self.n_trials} is more than the {sum(per_rung)} trials ASHA reaches on the at "
            f"most {bound} distinct configurations of this space "
            f"({' + '.join(map(str, per_rung))} over its {len(per_rung)} rungs, eta "
            f"{self.eta}); widen the space or lower n_trials"
        )

    def owns(self, library: str, params: Params, fixed: Params) -> bool:
        if self.rung(library, params) is None:
            return False
        rounds = self.rounds_param(library)
        return self.drew({k: v for k, v in params.items() if k != rounds}, fixed)

    def problems(self, library: str, fixed: Params) -> list[str]:
        """Besides the space's: the resource must be a rounds parameter of the library, set by
        the rungs only."""
        found = super().problems(library, fixed)
        where = f"{library}.{self.key}"
        known = catalogues()[library].rounds
        name = self.rounds or (known[0] if known else None)
        if name is None:
            return [*found, f"{where}.rounds: {library} has no boosting-rounds parameter"]
        if name not in known:
            return [
                *found,
                f"{where}.rounds: {name!r} is not a boosting-rounds parameter of {library} "
                f"(choose from {', '.join(known)})",
            ]
        for other in known:
            if other in self.space or other in fixed:
                at = "space" if other in self.space else "fixed"
                found.append(f"{where}: {other!r} in {at}; the rungs set the rounds ({name})")
        found.extend(p for n in self.rungs() if (p := param_problem(where, library, name, n)))
        return found


class ASHAStrategy(AdaptiveStrategy[ASHASpec]):
    def __init__(self, spec: ASHASpec, context: SearchContext) -> None:
        super().__init__(spec, context)
        self.rounds = spec.rounds_param(context.library)
        self.rungs = spec.rungs()

    def _next(self) -> Decision | None:
        # Per configuration, its trial at each rung it has reached, in decision order.
        reached: dict[Hashable, dict[int, Decision]] = {}
        for trial in self.decided:
            rung = trial.rung if trial.rung is not None else self._rung(trial.params)
            assert rung is not None  # only trials at a rung are decided or restored
            reached.setdefault(configuration(trial.params, self.rounds), {})[rung] = trial
        for rung in reversed(range(len(self.rungs) - 1)):
            scored = [
                (score, position, config, trials[rung])
                for position, (config, trials) in enumerate(reached.items())
                if rung in trials
                and (score := self.outcomes.get(trials[rung].trial_id)) is not None
            ]
            scored.sort(key=lambda entry: (-entry[0], entry[1]))
            # The top 1/eta, rounded up as Ray Tune's and Optuna's cut-offs are: a rung's
            # best goes on before eta configurations have been scored there.
            for _, _, config, trial in scored[: math.ceil(len(scored) / self.spec.eta)]:
                if rung + 1 in reached[config]:
                    continue
                promoted = self.trial({**trial.params, self.rounds: self.rungs[rung + 1]})
                if promoted is not None:
                    return promoted
        return self.draw({self.rounds: self.rungs[0]})


KIND = SearchKind("asha", ASHASpec, ASHAStrategy, precedence=40)
