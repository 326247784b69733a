"""Asynchronous successive halving (ASHA, Li et al. 2020) with boosting rounds as the budget.

A configuration is a point of the space; at rung k it is the trial of that point with
`rungs[k]` rounds, a trial of the study like any other (its own id, its own result: exactly the
score of a model trained for that many rounds). Each decision takes, as ASHA's `get_job`
does, the best promotion there is, from the highest rung down: a configuration in the top
1/eta (rounded up) of those scored at its rung that has not gone up yet; when there is none, a new
configuration at the lowest rung, the next of a seeded stream of draws. No rung waits to fill,
so no worker waits for another's result.

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
from typing import Any

from tunefleet_contract import spec as schema
from tunefleet_contract.families import configuration
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.params import Scalar

from tunefleet_publisher.strategies.adaptive import AdaptiveStrategy

__all__ = ["ASHASearch"]


class ASHASearch(AdaptiveStrategy):
    kind = "asha"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert isinstance(self.search, schema.ASHASearch)
        self.asha: schema.ASHASearch = self.search
        self.rounds = schema.asha_rounds(self.library, self.asha)
        self.rungs = self.asha.rungs()

    def _next(self) -> TrialSpec | None:
        # Per configuration, its trial at each rung it has reached, in decision order.
        reached: dict[Hashable, dict[int, TrialSpec]] = {}
        for trial in self.decided:
            rung = self.rungs.index(trial.params[self.rounds])  # type: ignore[arg-type]
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
            for _, _, config, trial in scored[: math.ceil(len(scored) / self.asha.eta)]:
                if rung + 1 in reached[config]:
                    continue
                promoted = self.trial({**trial.params, self.rounds: self.rungs[rung + 1]})
                if promoted is not None:
                    return promoted
        return self.draw({self.rounds: self.rungs[0]})

    def _accepts(self, params: Mapping[str, Scalar]) -> bool:
        rounds = params.get(self.rounds)
        if type(rounds) is not int or rounds not in self.rungs:
            return False
        return super()._accepts({k: v for k, v in params.items() if k != self.rounds})
