"""Families: trials of one library that differ only in their number of boosting rounds.

A model of N rounds cut after n rounds is, for most settings, the model trained for n rounds
(each library's catalogue says where not: `LibraryCatalogue.rounds_of`). So one fit per fold at
a family's largest value scores every member. The planner keeps a family in one trial message,
and the worker finds the families of a message with the same function: part of the contract.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

from tunefleet_contract.libraries import catalogues
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.ids import configuration

__all__ = ["configuration", "families", "rounds_of"]


def rounds_of(library: str, params: Mapping[str, Scalar]) -> tuple[str, int] | None:
    """The trial's rounds parameter and value where one fit of more rounds, cut, scores it
    exactly (`LibraryCatalogue.rounds_of`); None where it does not."""
    catalogue = catalogues().get(library)
    if catalogue is None or not catalogue.rounds:
        return None
    return catalogue.rounds_of(params)


def _family_key(trial: TrialSpec) -> Hashable:
    found = rounds_of(trial.library, trial.params)
    if found is None:
        return trial.trial_id  # a family of one
    return trial.library, found[0], configuration(trial.params, found[0])


def families(trials: Iterable[TrialSpec]) -> list[list[TrialSpec]]:
    """The trials grouped into families: those that differ only in the rounds parameter (see
    `rounds_of`); every other trial is a family of one. Families in the order of their first
    trial, members in their given order."""
    groups: dict[Hashable, list[TrialSpec]] = {}
    for trial in trials:
        groups.setdefault(_family_key(trial), []).append(trial)
    return list(groups.values())
