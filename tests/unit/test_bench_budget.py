"""The adaptive benchmark's arithmetic (bench.budget): budgets, gaps, fractions, rungs."""

from __future__ import annotations

import threading

import pytest

from bench.budget import Budget, Evaluation, Outcome, fraction, relative_gap, rung_counts


def test_budget_hands_out_exactly_its_total_across_threads() -> None:
    budget = Budget(100)
    taken: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(60):
            got = budget.take()
            with lock:
                taken.append(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken.count(True) == 100
    assert taken.count(False) == 140
    assert budget.used == 100
    assert budget.take() is False


def test_budget_refuses_an_empty_total() -> None:
    with pytest.raises(ValueError, match="at least one evaluation"):
        Budget(0)


def test_relative_gap_is_a_shortfall_relative_to_the_reference() -> None:
    assert relative_gap(0.95, 0.96) == pytest.approx(0.01 / 0.96)
    assert relative_gap(0.97, 0.96) == pytest.approx(-0.01 / 0.96)
    assert relative_gap(0.96, 0.96) == 0
    # A negated loss: -2.0 is worse than -1.0 by 100% of the reference's magnitude.
    assert relative_gap(-2.0, -1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined"):
        relative_gap(0.1, 0.0)


def test_fraction_of_the_full_search() -> None:
    assert fraction(25.0, 100.0) == 0.25
    with pytest.raises(ValueError, match="positive"):
        fraction(1.0, 0.0)


def test_rung_counts_per_rung_lowest_first() -> None:
    rungs = [10, 30, 90, 270]
    evaluations = [Evaluation(r, 0.5, 1.0) for r in (10, 10, 30, 10, 270, 30, 10)]
    assert rung_counts(evaluations, rungs) == [4, 2, 0, 1]
    with pytest.raises(ValueError, match="not a rung"):
        rung_counts([Evaluation(20, 0.5, 1.0)], rungs)
    with pytest.raises(ValueError, match="not a rung"):
        rung_counts([Evaluation(None, 0.5, 1.0)], rungs)


def test_outcome_best_and_compute() -> None:
    outcome = Outcome(
        (Evaluation(10, 0.81, 0.5), Evaluation(30, 0.9, 1.25), Evaluation(10, 0.7, 0.25)), 3.0
    )
    assert outcome.best == 0.9
    assert outcome.fit_s == 2.0
    with pytest.raises(ValueError, match="no evaluation"):
        _ = Outcome((), 1.0).best


class _Trial:
    """Records what an Optuna trial is asked for and answers each with its low bound."""

    def __init__(self) -> None:
        self.asked: dict[str, tuple[object, ...]] = {}

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        self.asked[name] = ("float", low, high, log)
        return low

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        self.asked[name] = ("int", low, high, log)
        return low

    def suggest_categorical(self, name: str, choices: list[object]) -> object:
        self.asked[name] = ("categorical", tuple(choices))
        return choices[0]


def test_peers_ask_optuna_for_the_spec_space_with_its_conditions() -> None:
    from tunefleet_contract.search.kinds.random import RandomSpec

    from bench.adaptive_peers import suggest

    search = RandomSpec.model_validate(
        {
            "n_trials": 5,
            "space": {
                "booster": {"choice": ["gbtree", "dart"]},
                "rate_drop": {"uniform": [0.0, 0.5], "when": {"booster": "dart"}},
                "learning_rate": {"loguniform": [0.01, 0.3]},
                "max_depth": {"int": [2, 10]},
                "max_leaves": {"int": [4, 256], "log": True},
            },
        }
    )
    trial = _Trial()
    point = suggest(trial, search, {"n_estimators": 50})
    assert point == {
        "n_estimators": 50,
        "booster": "gbtree",
        "learning_rate": 0.01,
        "max_depth": 2,
        "max_leaves": 4,
    }
    assert trial.asked == {
        "booster": ("categorical", ("gbtree", "dart")),
        "learning_rate": ("float", 0.01, 0.3, True),
        "max_depth": ("int", 2, 10, False),
        "max_leaves": ("int", 4, 256, True),
    }
