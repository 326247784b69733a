"""`tunefleet dashboard`: a live web page of every study and of the fleet.

A Starlette app (`app.create_app`) served by uvicorn (`serve`). Its pages are filled in from a
JSON API whose aggregation happens on the server (`views`: a page of the trial table, sampled
series, the top trials), and kept current by server-sent events from a follower of the store
(`live`). Read-only unless started with TUNEFLEET_DASHBOARD_TOKEN, which cancel and resume
need; it binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from tunefleet_runtime.settings import DashboardSettings

from tunefleet.client import Client
from tunefleet.dashboard.app import create_app

__all__ = ["create_app", "serve"]


def serve(settings: DashboardSettings, *, host: str | None = None, port: int | None = None) -> None:
    """Run the dashboard until interrupted."""
    import uvicorn

    app = create_app(Client(settings), settings)
    uvicorn.run(
        app,
        host=host or settings.tunefleet_dashboard_host,
        port=settings.tunefleet_dashboard_port if port is None else port,
        log_level="warning",
        # Server-sent event streams stay open: do not wait for them at shutdown.
        timeout_graceful_shutdown=2,
    )
