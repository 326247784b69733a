"""The catalogue's registry: one module per model library, each with a `CATALOGUE`.

A new library is one new module here, its training module in the worker's
`tunefleet_worker.libraries`, and (to load its refitted models) its loader in the client's
`tunefleet.estimators`; nothing else names libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from tunefleet_contract.plugins import discover
from tunefleet_contract.rules import LibraryCatalogue

__all__ = ["catalogues"]


@cache
def catalogues() -> Mapping[str, LibraryCatalogue]:
    """Every library's catalogue by name, in name order."""
    return discover(__name__, __path__, "CATALOGUE", LibraryCatalogue)
