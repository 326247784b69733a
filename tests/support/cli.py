"""The CLI run in this process (typer's runner), for the suites that drive it."""

from __future__ import annotations

from typing import Any

from tunefleet.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def cli(*args: str) -> Any:
    """`tunefleet ARGS`, which must succeed (exit code 0); its result (stdout, output)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result
