"""docs/operations.md shows `simulate --sweep` with its output: the command runs and prints it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from dispatcher.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _example() -> tuple[list[str], list[str]]:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(
        r"```text\n\$ (dispatcher simulate [^\n]*--sweep[^\n]*)\n(.*?)```", text, re.S
    )
    assert found, "docs/operations.md has no `$ dispatcher simulate ... --sweep` example"
    return shlex.split(found.group(1))[1:], _rows(found.group(2))


def _rows(output: str) -> list[str]:
    """The table's data rows, without the padding that depends on the terminal."""
    return [" ".join(line.split()) for line in output.splitlines() if line.startswith("│")]


def test_the_documented_sweep_prints_what_the_doc_shows() -> None:
    args, shown = _example()
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert _rows(result.output) == shown
    assert sum("knee" in row for row in shown) == 1
