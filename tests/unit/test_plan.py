"""`dispatcher plan`: tables, JSON, rejected lines, duplicates, rendered manifests."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from dispatcher.cli import cli
from dispatcher.operator.examples import example_orders
from tests.unit.golden import check_golden

SWARM = [
    '{"order_id":"a-1","input":{"uri":"gs://b/1","size_bytes":1000}}',
    '{"order_id":"a-2","input":{"uri":"gs://b/2","size_bytes":2000},"steps":{"enrich":true}}',
    "{broken",
    '{"order_id":"a-1","input":{"uri":"gs://b/1","size_bytes":1000}}',
    "",
    '{"order_id":"m-1","input":{"uri":"gs://b/m","size_bytes":1000000000}}',
    '{"order_id":"l-1","input":{"uri":"gs://b/l","size_bytes":100000000000}}',
    '{"order_id":"bad","input":{"uri":"gs://b/x","size_bytes":1.5}}',
]


def run(*args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.output


def test_plan_json_document() -> None:
    code, out = run("plan", "-", "--json", stdin="\n".join(SWARM))
    assert code == 0, out
    doc = json.loads(out)
    assert sorted(w["class"] for w in doc["workflows"]) == ["large", "medium", "small"]
    small = next(w for w in doc["workflows"] if w["class"] == "small")
    assert small["order_ids"] == ["a-1", "a-2"]
    assert [(r["line"], r["reason"]) for r in doc["rejected"]] == [
        (3, "invalid_json"),
        (8, "schema"),
    ]
    assert doc["summary"]["duplicates"] == 1 and doc["summary"]["orders"] == 4


def test_plan_tables_list_classes_and_rejections(tmp_path: Path) -> None:
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join(SWARM))
    code, out = run("plan", str(orders))
    assert code == 0
    for needle in ("small-spot", "medium", "large", "invalid_json", "1 duplicates", "4 orders"):
        assert needle in out


def test_render_writes_golden_manifests(tmp_path: Path) -> None:
    code, _ = run("plan", "-", "--render", str(tmp_path / "out"), stdin="\n".join(SWARM))
    assert code == 0
    files = sorted((tmp_path / "out").glob("*.yaml"))
    assert len(files) == 3
    joined = "".join(f"# {f.name}\n{f.read_text()}" for f in files)
    check_golden("plan-render.yaml", joined)
    for f in files:
        body = yaml.safe_load(f.read_text())
        assert body["kind"] == "Workflow" and f.stem == body["metadata"]["name"]


def test_plan_of_generated_swarm_accounts_for_every_line() -> None:
    lines = list(example_orders(3000, seed=3, invalid_share=0.05, duplicate_share=0.05))
    code, out = run("plan", "-", "--json", stdin="\n".join(lines))
    assert code == 0
    doc = json.loads(out)
    planned = [oid for w in doc["workflows"] for oid in w["order_ids"]]
    assert len(planned) == len(set(planned))
    summary = doc["summary"]
    assert summary["orders"] + summary["duplicates"] + summary["rejected"] == len(lines)
    assert summary["rejected"] > 0 and summary["duplicates"] > 0


def test_plan_with_bad_config_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("classes: []\n")
    code, out = run("plan", "-", "--config", str(bad), stdin=SWARM[0])
    assert code == 1 and "classes" in out


def test_example_orders_is_deterministic() -> None:
    first = run("example-orders", "50", "--seed", "9")[1]
    assert first == run("example-orders", "50", "--seed", "9")[1]
    assert len(first.splitlines()) == 50
