"""What every `tunefleet` command shares: the app, the consoles, the exit codes, the one-line
error handling, the client, and the formatting of values.

Exit codes: 0 success; 1 the operation failed (service unreachable, unknown study or trial,
timeout); 2 bad usage, configuration or spec; 3 `--wait` saw the study end with failed trials;
4 `--wait` saw it cancelled. Human output goes to stdout (progress to stderr); `--json` prints
one JSON document (or JSON lines for lists) to stdout for scripts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from tunefleet_contract.documents import finite
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.broker import CONNECTION_ERRORS
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import STORE_ERRORS

from tunefleet.client import Client, StudyNotFoundError

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_TRIALS_FAILED",
    "EXIT_USAGE",
    "JsonOpt",
    "StudyArg",
    "TimeoutOpt",
    "TrialOpt",
    "WaitOpt",
    "app",
    "client",
    "emit",
    "err",
    "errors",
    "fail",
    "out",
    "params",
    "score",
    "when",
]

app = typer.Typer(
    name="tunefleet",
    help="Distributed hyperparameter tuning for XGBoost, LightGBM and CatBoost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRIALS_FAILED = 3
EXIT_CANCELLED = 4

StudyArg = Annotated[str, typer.Argument(help="Study id (as `submit` and `studies` print it).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    one_line = re.sub(r"\s+", " ", message).strip()
    err.print(f"error: {one_line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """The failures every command can meet, as one-line messages and exit codes."""
    try:
        yield
    except BrokenPipeError:
        # `tunefleet ... | head`: the reader has all it wanted; not an error, and not RabbitMQ's
        # (BrokenPipeError is a ConnectionError). Silence the flush at exit too.
        sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - lives until the process exits
        raise typer.Exit(0) from None
    except StudyNotFoundError as exc:
        fail(str(exc))
    except SpecError as exc:
        fail(str(exc), EXIT_USAGE)
    except CONNECTION_ERRORS as exc:
        fail(f"cannot reach RabbitMQ: {exc or type(exc).__name__}")
    except STORE_ERRORS as exc:
        fail(f"cannot read MongoDB: {str(exc).split(',')[0]}")
    except TimeoutError as exc:
        fail(str(exc))


def client() -> Client:
    """The client of the environment's settings (tests replace it)."""
    try:
        return Client(ClientSettings())
    except ValidationError as exc:
        names = ", ".join(".".join(map(str, e["loc"])).upper() for e in exc.errors())
        fail(
            f"configuration: set {names} (e.g. RABBITMQ_URL=amqp://..., MONGODB_URL=mongodb://...)",
            EXIT_USAGE,
        )


def emit(value: Any) -> None:
    # finite: pandas turns a missing score into NaN, which JSON does not have (null does).
    sys.stdout.write(json.dumps(finite(value), default=jsonable, allow_nan=False) + "\n")


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    return str(value)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def score(value: Any, digits: int = 6) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


WaitOpt = Annotated[bool, typer.Option("--wait", help="Show live progress until the study ends.")]
TimeoutOpt = Annotated[
    float | None, typer.Option(help="With --wait: give up after this many seconds (exit 1).")
]


TrialOpt = Annotated[
    str | None, typer.Option("--trial", help="A trial id or unique prefix (default: the best).")
]
