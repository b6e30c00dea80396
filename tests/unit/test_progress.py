"""Progress output: a plain line (count, total, rate, ETA, no redraws) wherever no one watches
a terminal, a live bar on one."""

from __future__ import annotations

import pytest

from dispatcher.commands.progress import Meter


def test_ci_gets_plain_lines_with_the_count_and_eta(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    with Meter("publishing", total=1000) as progress:
        assert progress._bar is None
        progress.update(done=400)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("publishing: 400 of 1,000 done, ")
    assert "ETA" in lines[0] and "/s" in lines[0] and "looked at" not in lines[0]


def test_a_terminal_outside_ci_gets_the_live_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert Meter("publishing", total=None)._bar is not None
