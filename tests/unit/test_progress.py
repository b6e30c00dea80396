"""Progress output: a plain line (count, total, rate, no redraws) wherever no one watches a terminal."""

from __future__ import annotations

import pytest

from dispatcher.commands.publish_progress import LiveMeter, PlainMeter, meter


def test_ci_gets_plain_lines_with_the_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    chosen = meter("publishing", 1000)
    assert isinstance(chosen, PlainMeter)
    with chosen as progress:
        progress.update(400)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("publishing: 400/1,000 (")
    assert "ETA" in lines[0] and "/s" in lines[0]


def test_a_terminal_outside_ci_gets_the_live_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(meter("publishing", None), LiveMeter)
