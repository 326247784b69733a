"""One module per library: how a package of them is read (the catalogue's, the worker's)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["discover"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Named)


def discover(package: str, path: Iterable[str], attribute: str, kind: type[T]) -> dict[str, T]:
    """`attribute` of every module of `package` (its `__path__`), by name, in name order; each
    must be a `kind` named as its module."""
    found: dict[str, T] = {}
    for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        value = getattr(importlib.import_module(f"{package}.{module.name}"), attribute)
        if not isinstance(value, kind) or value.name != module.name:
            raise TypeError(f"{package}.{module.name}.{attribute} is not its {kind.__name__}")
        found[value.name] = value
    return found
