"""``dispatcher simulate`` as an operator runs it: table, JSON/YAML, plot, sweep, errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from dispatcher.cli import cli

BASE = ["simulate", "gen:burst:n=200", "--config", "config/dev.yaml", "--cluster", "gke"]


def test_json_and_yaml_are_one_document() -> None:
    runner = CliRunner()
    as_json = runner.invoke(cli, [*BASE, "-o", "json"])
    as_yaml = runner.invoke(cli, [*BASE, "-o", "yaml"])
    assert as_json.exit_code == as_yaml.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    other = yaml.safe_load(as_yaml.output)
    document.pop("wall_seconds"), other.pop("wall_seconds")
    assert document == other
    assert document["orders"] == 200
    assert set(document["pools"]) == {"small-spot", "medium-spot", "large", "ondemand"}


def test_the_table_and_the_plot(tmp_path: Path) -> None:
    png = tmp_path / "swarm.png"
    result = CliRunner().invoke(cli, [*BASE, "--plot", str(png), "--profile", "balanced"])
    assert result.exit_code == 0, result.output
    assert "makespan" in result.output and "(balanced)" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_jsonl_swarm_with_an_arrival_curve(tmp_path: Path) -> None:
    orders = tmp_path / "orders.jsonl"
    lines = [
        json.dumps({"order_id": f"o{i}", "input": {"uri": f"gs://b/{i}", "size_bytes": 1000 * i}})
        for i in range(1, 21)
    ]
    orders.write_text("\n".join([*lines, "{not json"]) + "\n")
    args = ["simulate", f"{orders}@steady:rate=2", "--cluster", "test-cluster", "-o", "json"]
    result = CliRunner().invoke(cli, [*args, "--config", "config/dev.yaml"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["completed"] == 20 and document["dead_lettered"] == 1
    assert document["makespan_seconds"] >= 10  # the last order was published at 10 s


def test_sweep_marks_one_knee() -> None:
    args = [*BASE[:1], "gen:burst:n=150", *BASE[2:], "--sweep", "small.max_live_workflows=1..4"]
    result = CliRunner().invoke(cli, [*args, "-o", "json"])
    assert result.exit_code == 0, result.output
    points = json.loads(result.output)["points"]
    assert [p["value"] for p in points] == [1, 2, 3, 4]
    assert sum(p["knee"] for p in points) == 1


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["simulate", "nope.jsonl", "--cluster", "gke"])
    assert missing.exit_code == 1 and "no such file" in missing.output
    model = yaml.safe_load(Path("dispatcher/simulate/models/gke.yaml").read_text())
    model["pools"] = [p for p in model["pools"] if p["name"] != "large"]
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump(model))
    no_pool = runner.invoke(cli, [*BASE[:4], "--cluster", str(partial)])
    assert no_pool.exit_code == 1 and "node pool 'large'" in no_pool.output, no_pool.output
    not_yaml = runner.invoke(cli, [*BASE[:4], "--cluster", "README.md"])
    assert not_yaml.exit_code == 1, not_yaml.output
