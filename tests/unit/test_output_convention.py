"""One output convention: read commands take -o table|json|yaml; --json stays as an alias;
the exit codes are in `dispatcher --help`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from dispatcher.cli import cli

ORDERS = "\n".join(
    [
        json.dumps({"order_id": "a", "input": {"uri": "gs://b/a", "size_bytes": 10}}),
        "{not json",
    ]
)


def test_plan_prints_the_same_document_as_json_yaml_and_the_alias(tmp_path: Path) -> None:
    orders = tmp_path / "orders.jsonl"
    orders.write_text(ORDERS + "\n")
    runner = CliRunner()
    as_json = runner.invoke(cli, ["plan", str(orders), "-o", "json"])
    as_yaml = runner.invoke(cli, ["plan", str(orders), "-o", "yaml"])
    alias = runner.invoke(cli, ["plan", str(orders), "--json"])
    assert as_json.exit_code == as_yaml.exit_code == alias.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert yaml.safe_load(as_yaml.output) == document == json.loads(alias.output)
    assert len(document["rejected"]) == 1


def test_every_read_command_offers_the_three_formats() -> None:
    runner = CliRunner()
    for command in (
        ["plan"], ["status"], ["limits", "status"], ["dead-letter", "inspect"],
        ["local", "status"], ["publish"], ["simulate"],
    ):  # fmt: skip
        shown = runner.invoke(cli, [*command, "--help"])
        assert shown.exit_code == 0, command
        assert "[table|json|yaml]" in shown.output, command


def test_the_exit_codes_are_in_the_top_level_help() -> None:
    shown = CliRunner().invoke(cli, ["--help"])
    for code in ("0", "1", "2", "3", "4", "130"):
        assert f"\n  {code} " in shown.output.replace("    ", "  "), code
