""".ci/run runs the README's test command and nothing else, so CI proves the README."""

from __future__ import annotations

import re
import shlex
import subprocess

from .conftest import ROOT

# What .ci/run may do besides the README's command: shell options, moving to the checkout,
# environment variables.
_HARNESS = (
    re.compile(r"set -[euxo]+( pipefail)?"),
    re.compile(r'cd "\$\(dirname "\$0"\)/\.\."'),
    re.compile(r"export [A-Z_][A-Z0-9_]*=\S+"),
)
_INSTALLERS = re.compile(
    r"\b(apt-get|apt|dpkg|pip3?|uv|pipx|go|npm|curl|wget|make [a-z-]*install)\b"
)


def _commands(script: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in script.splitlines()[1:])
    return [line for line in lines if line]


def readme_commands() -> dict[str, str]:
    """The quick start's commands by the word they end in: {"demo": "make demo", ...}."""
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```", 2)[1]
    found = {}
    for line in _commands("\n" + block):
        command = shlex.split(line)
        found[command[-1]] = " ".join(command)
    return found


def test_the_readme_quick_start_has_the_two_commands() -> None:
    assert readme_commands() == {"demo": "make demo", "test": "make test"}


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = _commands((ROOT / ".ci" / "run").read_text())
    rest = [c for c in commands if not any(p.fullmatch(c) for p in _HARNESS)]
    assert rest == [readme_commands()["test"]], rest


def test_ci_installs_nothing_itself() -> None:
    commands = _commands((ROOT / ".ci" / "run").read_text())
    assert not [c for c in commands if _INSTALLERS.search(c)]


def test_make_help_lists_the_readme_commands_first() -> None:
    shown = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    targets = re.findall(r"^\s+(?:\x1b\[36m)?([a-z][a-z0-9-]*)", shown, re.M)
    assert targets[:2] == ["demo", "test"], targets[:4]
    assert targets[2:] == sorted(targets[2:])
