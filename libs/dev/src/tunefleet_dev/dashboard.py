"""`make dashboard`: local services, the three services, and the dashboard on them.

    python -m tunefleet_dev.dashboard [SPEC]   (SPEC, e.g. examples/demo.yaml: submitted once
                                                the dashboard is up, to watch it fill in)

It makes a token for this session (the dashboard has no default one) and prints it with the
address; everything it starts stops on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from tunefleet.client import Client
from tunefleet.dashboard import serve
from tunefleet_dev.devservices import Pipeline, running
from tunefleet_runtime.settings import DashboardSettings
from tunefleet_runtime.validation import load_spec


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = load_spec(Path(args[0])) if args else None
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="tunefleet-dashboard-"))
    port = int(os.environ.get("TUNEFLEET_DASHBOARD_PORT", "8765"))
    token = secrets.token_urlsafe(24)
    with running(root / "services") as services, Pipeline(services, root / "logs") as pipeline:
        pipeline.start_all(workers=2)
        settings = DashboardSettings(
            rabbitmq_url=services.rabbitmq_url,
            mongodb_url=services.mongodb_url,
            tunefleet_dashboard_port=port,
            tunefleet_dashboard_token=SecretStr(token),
        )
        console.print(
            f"services ({services.origin}): {services.rabbitmq_url} {services.mongodb_url}\n"
            f"[bold]dashboard[/]: http://127.0.0.1:{port}/  token (cancel, resume): {token}\n"
            f"submit to it: RABBITMQ_URL={services.rabbitmq_url} "
            f"MONGODB_URL={services.mongodb_url} tunefleet submit SPEC"
        )
        if spec is not None:

            def submit() -> None:
                time.sleep(2.0)  # the page first, then the study filling it in
                study = Client(settings).submit(spec)
                console.print(f"submitted study [bold]{study}[/]")

            threading.Thread(target=submit, daemon=True).start()
        serve(settings)
    console.print(f"stopped every process; logs and data under {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
