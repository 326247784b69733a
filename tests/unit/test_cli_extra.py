from __future__ import annotations

import pytest
from tunefleet import cli


def test_missing_client_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def needs_pandas() -> None:
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    monkeypatch.setattr(cli, "app", needs_pandas)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    assert "pip install 'tunefleet[client]'" in capsys.readouterr().err


def test_other_missing_modules_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ModuleNotFoundError("No module named 'nonexistent'", name="nonexistent")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main()
