"""The client's registry of model loaders: one module per library whose refitted models it can
load, each with a `LOADER`, found like the catalogue's and the worker's libraries.

A loader turns a stored model file (the library's native format, as the worker's library module
saved it) back into the library's fitted scikit-learn estimator. A new library's loader is one
module here; a library without one stores models that `Study.best_model` cannot load.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from tunefleet_contract.messages import ModelStored
from tunefleet_contract.plugins import discover

__all__ = ["ModelLoader", "model_loaders"]


class ModelLoader:
    """What the client knows of loading one library's models."""

    name: ClassVar[str]  # the catalogue's name for the library

    def load(self, model: ModelStored, path: Path, classify: bool) -> Any:
        """The fitted estimator holding the model stored at `path` (its parameters and what
        was fitted are in `model`)."""
        raise NotImplementedError(f"{self.name} loads no model")


@cache
def model_loaders() -> Mapping[str, ModelLoader]:
    """Every library whose models the client loads, by name."""
    return discover(__name__, __path__, "LOADER", ModelLoader)
