"""tunefleet: distributed hyperparameter tuning. `from tunefleet import Client` for notebooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunefleet.client import Client, Study

__all__ = ["Client", "Study"]


def __getattr__(name: str) -> Any:
    # Lazy: `import tunefleet.cli` should not pay for the client's imports before it needs them.
    if name in __all__:
        from tunefleet import client

        return getattr(client, name)
    raise AttributeError(f"module 'tunefleet' has no attribute {name!r}")
