"""The catalogue's registry: one module per model library, each with a `CATALOGUE`.

A new library is one new module here (and its training module in the worker's
`tunefleet_worker.libraries`); nothing else names libraries.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache

from tunefleet_contract.rules import LibraryCatalogue

__all__ = ["catalogues"]


@cache
def catalogues() -> Mapping[str, LibraryCatalogue]:
    """Every library's catalogue by name, in name order."""
    found: dict[str, LibraryCatalogue] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        catalogue = importlib.import_module(f"{__name__}.{module.name}").CATALOGUE
        if not isinstance(catalogue, LibraryCatalogue) or catalogue.name != module.name:
            raise TypeError(f"{__name__}.{module.name}.CATALOGUE is not its LibraryCatalogue")
        found[catalogue.name] = catalogue
    return found
