"""`make demo`: start local services and the three services, run a real study, show results.

    python -m tunefleet_dev.demo [SPEC]     (default: examples/demo.yaml under the working
                                             directory, as `make demo` runs it from the checkout)

Everything it starts it stops again, also on Ctrl-C; the results stay in the local MongoDB
data directory it prints.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tunefleet.client import Client
from tunefleet_dev.devservices import Pipeline, running
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.validation import load_spec

# Relative to the working directory, not to this file: an installed package has no examples/.
SPEC = Path("examples") / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec_path = Path(args[0]) if args else SPEC
    console = Console()
    if not spec_path.is_file():
        console.print(f"no spec at {spec_path}: give one, `python -m tunefleet_dev.demo SPEC`")
        return 2
    spec = load_spec(spec_path)
    root = Path(tempfile.mkdtemp(prefix="tunefleet-demo-"))
    console.print(
        f"[bold]tunefleet demo[/]: {spec.n_trials()} trials of "
        f"{', '.join(spec.search)} on {spec_path.name}; working in {root}"
    )
    with running(root / "services") as services:
        console.print(
            f"services ({services.origin}): {services.rabbitmq_url} {services.mongodb_url}"
        )
        with Pipeline(services, root / "logs") as pipeline:
            pipeline.start_all(workers=2)
            client = Client(
                ClientSettings(rabbitmq_url=services.rabbitmq_url, mongodb_url=services.mongodb_url)
            )
            started = time.monotonic()
            study = client.submit(spec)
            console.print(f"submitted study [bold]{study}[/]")
            # Live progress from the broker's event stream, as `tunefleet submit --wait` shows it.
            status = study.wait(progress=True, timeout_s=1800)
            elapsed = time.monotonic() - started
            table = Table(
                title=f"best trial per library ({status.metric}, {elapsed:.1f} s, "
                f"{status.done} done, {status.failed} failed)"
            )
            for column in ("library", "score", "std", "params", "worker"):
                table.add_column(column)
            for library in spec.search:
                for row in client.best(study, 1, library=library):
                    table.add_row(
                        library,
                        f"{row.score or 0:.5f}",
                        f"{row.score_std or 0:.4f}",
                        ", ".join(f"{k}={v}" for k, v in sorted(row.params.items())),
                        row.worker,
                    )
            console.print(table)
    console.print(f"stopped every process; logs and data under {root}")
    return 0 if status.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
