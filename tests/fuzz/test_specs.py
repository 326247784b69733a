"""The spec parser and the CLI's spec loading, given anything: a spec or one `error:` line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from tunefleet.cli import app
from tunefleet_contract.spec import SpecError, StudySpec
from tunefleet_runtime.validation import load_spec, parse_spec
from typer.testing import CliRunner

from .conftest import FEW
from .strategies import JSON, mutated, nested_bytes, text_mutations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
VALID_SPECS: list[dict[str, Any]] = [yaml.safe_load(p.read_text()) for p in EXAMPLES]
VALID_TEXTS = [p.read_text() for p in EXAMPLES]
# No broker or store: a valid spec ends in the configuration error, also an `error:` line.
NO_SERVICES = {name: None for name in ("RABBITMQ_URL", "MONGODB_URL")}


def _parsed_or_refused(data: object) -> StudySpec | None:
    try:
        spec = parse_spec(data)
    except SpecError as exc:
        assert str(exc), "a refusal says why"
        return None
    assert spec.n_trials() >= 0
    return spec


@given(JSON)
def test_any_value_is_a_spec_or_a_spec_error(data: object) -> None:
    _parsed_or_refused(data)


@given(st.sampled_from(VALID_SPECS).flatmap(mutated))
def test_mutated_specs_parse_or_are_refused(data: object) -> None:
    _parsed_or_refused(data)


def _load(text: str, suffix: str) -> StudySpec | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"spec{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_spec(path)
        except SpecError:
            return None


@given(st.sampled_from(VALID_TEXTS).flatmap(text_mutations) | st.text(max_size=300))
def test_mutated_spec_files_load_or_are_refused(text: str) -> None:
    _load(text, ".yaml")


@FEW
@given(st.integers(1, 5_000), st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", "")]))
def test_deeply_nested_spec_files_are_refused(depth: int, brackets: tuple[str, str]) -> None:
    opener, closer = brackets
    if opener == "- ":
        body = "".join("  " * i + "-\n" for i in range(min(depth, 2000)))
    else:
        body = nested_bytes(depth, opener.encode(), closer.encode()).decode()
    assert _load(f"name: x\ndataset: iris\nsearch: {body}\n", ".yaml") is None
    assert _load(json.dumps({"search": json.loads("[" * 50 + "]" * 50)}), ".json") is None


RUNNER = CliRunner()


@FEW
@given(
    st.sampled_from(VALID_TEXTS).flatmap(text_mutations)
    | st.integers(1, 5000).map(lambda n: "search: " + "[" * n + "]" * n)
)
def test_the_cli_answers_any_spec_file_with_an_error_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = RUNNER.invoke(app, ["submit", str(path)], env=NO_SERVICES)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "error:" in result.output
    assert "Traceback" not in result.output
