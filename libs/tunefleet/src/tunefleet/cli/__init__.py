"""`tunefleet`: submit studies, watch them, read, export and report their results.

The commands live by job in `lifecycle` (submit, status, cancel, resume), `results` (top,
show, results, export, report, studies), `cost`, `web` (dashboard) and `artifacts` (refit,
model, datasets, dead letters); they are registered here, in the order `tunefleet --help` lists
them. Exit codes and output conventions are in `common`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tunefleet.cli import artifacts, cost, lifecycle, results, web
from tunefleet.cli.common import app, err

__all__ = ["app", "main"]

_ORDER: tuple[Callable[..., Any], ...] = (
    lifecycle.submit,
    lifecycle.status,
    results.top,
    results.show,
    results.results,
    results.export,
    results.report,
    cost.cost,
    web.dashboard,
    lifecycle.cancel,
    lifecycle.resume,
    results.studies,
    artifacts.dead_letters,
    artifacts.refit,
    artifacts.model,
    artifacts.datasets,
)
for _command in _ORDER:
    app.command(_command.__name__.replace("_", "-"))(_command)

# Exports, results tables and reports need the `client` extra; the services install none of it.
_CLIENT_EXTRA = {"pandas", "plotly", "pyarrow", "starlette", "sse_starlette", "uvicorn"}


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        if exc.name not in _CLIENT_EXTRA:
            raise
        err.print(
            f"error: this command needs {exc.name}: pip install 'tunefleet[client]'",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
