"""The arithmetic of the adaptive-search benchmark (`bench.adaptive`), kept apart to be tested.

An evaluation is one configuration cross-validated at one number of rounds: a tunefleet trial,
one rung of an Optuna trial, one reported result of a Ray Tune trial. Every side is given the
same number of evaluations (`Budget`), and is judged by the best score among them, the seconds
its fits took and its wall time, against the full search's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Budget", "Evaluation", "Outcome", "fraction", "relative_gap", "rung_counts"]


class Budget:
    """A fixed number of evaluations shared by the threads (or actors) of one search: each
    takes one before it evaluates, so that the search ends at exactly `total`."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a budget needs at least one evaluation, not {total}")
        self.total = total
        self._left = total
        self._lock = threading.Lock()

    def take(self) -> bool:
        """One evaluation, if any is left."""
        with self._lock:
            if self._left == 0:
                return False
            self._left -= 1
            return True

    @property
    def used(self) -> int:
        with self._lock:
            return self.total - self._left


@dataclass(frozen=True)
class Evaluation:
    rounds: int | None  # the boosting rounds it was trained for (None: fixed by the spec)
    score: float  # mean over the folds of a scikit-learn scorer: greater is better
    fit_s: float  # seconds in `fit`, summed over the folds


@dataclass(frozen=True)
class Outcome:
    """One side's run of one search."""

    evaluations: tuple[Evaluation, ...]
    wall_s: float

    @property
    def best(self) -> float:
        if not self.evaluations:
            raise ValueError("no evaluation: no best score")
        return max(e.score for e in self.evaluations)

    @property
    def fit_s(self) -> float:
        return sum(e.fit_s for e in self.evaluations)


def relative_gap(best: float, reference: float) -> float:
    """How far `best` falls short of `reference`, relative to it: 0.002 is 0.2% worse, a
    negative gap is better than the reference. Scores are greater-is-better (scikit-learn's
    scorers negate losses), so the reference's magnitude is the scale."""
    if reference == 0:
        raise ValueError("a relative gap to a reference score of 0 is undefined")
    return (reference - best) / abs(reference)


def fraction(part: float, whole: float) -> float:
    """`part` as a share of `whole` (compute or wall time against the full search's)."""
    if whole <= 0:
        raise ValueError(f"the whole must be positive, not {whole}")
    return part / whole


def rung_counts(evaluations: Sequence[Evaluation], rungs: Sequence[int]) -> list[int]:
    """How many evaluations each rung had, lowest rung first; an evaluation at rounds that are
    not a rung is an error (the sides must use the same rungs)."""
    counts = dict.fromkeys(rungs, 0)
    for evaluation in evaluations:
        if evaluation.rounds not in counts:
            raise ValueError(f"{evaluation.rounds} rounds is not a rung of {list(rungs)}")
        counts[evaluation.rounds] += 1
    return list(counts.values())
