"""The registry of search kinds: one module per kind, each with a `KIND` (a `SearchKind`).

A new kind is one new module here: its section of a library's search in a spec (named as the
module), its strategy, its precedence. The spec's schema, the planner and the read side find
it here; nothing else names search kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from tunefleet_contract.plugins import discover
from tunefleet_contract.search.strategy import SearchKind

__all__ = ["search_kinds"]


@cache
def search_kinds() -> Mapping[str, SearchKind[Any]]:
    """Every search kind by name, in precedence order."""
    found = discover(__name__, __path__, "KIND", SearchKind)
    return dict(sorted(found.items(), key=lambda item: (item[1].precedence, item[0])))
