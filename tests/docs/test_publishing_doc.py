"""docs/publishing.md stays true: its reason table covers every code, its exit codes are the
command's, and its Python example runs against a real Pub/Sub server as written (names aside)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dispatcher.cli import cli
from dispatcher.config import default_config_text
from dispatcher.core.replay import CONTENT_REASONS, REASON_CODES
from tests.pubsub.plugin import drain

DOC = Path(__file__).resolve().parents[2] / "docs" / "publishing.md"


def table_rows(text: str, header: str) -> list[list[str]]:
    """Cells (backticks removed) of the markdown table whose header row starts with ``header``."""
    block = text.split(f"| {header} |", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in block.splitlines()[2:]]
    return [[cell.strip().strip("`") for cell in row] for row in rows]


def table_codes(text: str, header: str) -> list[str]:
    return [row[0] for row in table_rows(text, header)]


def test_every_dead_letter_reason_is_explained_and_yours_means_the_content() -> None:
    rows = table_rows(DOC.read_text(encoding="utf-8"), "`dlq_reason`")
    assert sorted(row[0] for row in rows) == sorted(REASON_CODES)
    assert {row[0] for row in rows if row[1] == "yours"} == {r.value for r in CONTENT_REASONS}


def test_exit_codes_match_the_command_help() -> None:
    documented = table_codes(DOC.read_text(encoding="utf-8"), "Exit code")
    helped = CliRunner().invoke(cli, ["publish", "--help"]).stdout
    listed = re.findall(r"^\s+(\d)\s{2}", helped.split("Exit codes:", 1)[1], flags=re.MULTILINE)
    assert documented == listed == ["0", "1", "2", "3", "4"]


@pytest.mark.pubsub
def test_the_python_example_runs(
    pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    names = make_topic_subscription(prefix="doc")
    example = DOC.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "deployed-config.yaml"
    config.write_text(default_config_text(), encoding="utf-8")
    topic_name = names.topic.rsplit("/", 1)[1]
    code = (
        example.replace('"deployed-config.yaml"', repr(str(config)))
        .replace('"orders"', repr(topic_name))
        .replace('"my-project"', repr(pubsub_clients.project))
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {})
    message_id = printed.getvalue().strip()
    got = drain(pubsub_clients, names.subscription, expected=1)
    assert list(got) == [message_id]
    assert got[message_id].attributes["order_id"] == "o-1"
