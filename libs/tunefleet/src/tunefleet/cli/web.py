"""`tunefleet dashboard`: the live web page (`tunefleet.dashboard`), started with the CLI's
settings."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from tunefleet_runtime.settings import DashboardSettings

from tunefleet.cli.common import EXIT_USAGE, err, errors, fail


def dashboard(
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default TUNEFLEET_DASHBOARD_HOST, else 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (default TUNEFLEET_DASHBOARD_PORT, else 8765).", min=0, max=65535),
    ] = None,
) -> None:
    """A live web page of the studies, their trials and the fleet. Read-only unless
    TUNEFLEET_DASHBOARD_TOKEN is set (cancel and resume need it)."""
    from tunefleet.dashboard import serve

    try:
        settings = DashboardSettings()
    except ValidationError as exc:
        names = ", ".join(".".join(map(str, e["loc"])).upper() for e in exc.errors())
        fail(f"configuration: set {names} correctly", EXIT_USAGE)
    bind = host or settings.tunefleet_dashboard_host
    mode = "cancel and resume with the token" if settings.tunefleet_dashboard_token else "read-only"
    err.print(
        f"tunefleet dashboard on http://{bind}:{port or settings.tunefleet_dashboard_port}/ "
        f"({mode}); Ctrl-C stops it",
        markup=False,
        highlight=False,
    )
    with errors():
        serve(settings, host=host, port=port)
