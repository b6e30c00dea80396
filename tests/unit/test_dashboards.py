"""The dashboard is defined once: the committed Cloud Monitoring and Grafana files are exactly
what ``dispatcher dashboard`` renders, and both show the same queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from dispatcher.cli import cli
from dispatcher.operator import dashboards
from dispatcher.service.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
FILES = {
    "cloud-monitoring": REPO / "k8s/infra/base/dashboard.yaml",
    "grafana": REPO / "docs/dashboards/grafana.json",
}


def test_the_committed_dashboards_are_the_rendered_ones() -> None:
    for fmt, path in FILES.items():
        result = CliRunner().invoke(cli, ["dashboard", "--format", fmt])
        assert result.exit_code == 0, result.output
        assert path.read_text() == result.output, (
            f"{path}: run `dispatcher dashboard --format {fmt}`"
        )


def test_both_show_the_same_queries_over_exported_series() -> None:
    kcc = yaml.safe_load(FILES["cloud-monitoring"].read_text())
    widgets = kcc["spec"]["gridLayout"]["widgets"]
    in_kcc = [
        d["timeSeriesQuery"]["prometheusQuery"]
        for w in widgets
        for d in w.get("xyChart", {}).get("dataSets", [])
    ] + [w["scorecard"]["timeSeriesQuery"]["prometheusQuery"] for w in widgets if "scorecard" in w]
    grafana = json.loads(FILES["grafana"].read_text())
    in_grafana = [t["expr"] for p in grafana["panels"] for t in p["targets"]]
    assert sorted(in_kcc) == sorted(in_grafana)
    assert [w["title"] for w in widgets] == [p["title"] for p in grafana["panels"]]
    exported = {f.name for f in Metrics().registry.collect()}
    named = {m for q in in_grafana for m in re.findall(r"\bburst_dispatcher_[a-z_]+", q)}
    stems = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in named}
    assert stems <= exported, sorted(stems - exported)
    # What an operator asked for is on it: backlog, age, created, held, live vs cap, dead
    # letters, create errors, replicas.
    for series in (
        "num_undelivered_messages", "oldest_unacked_message_age", "workflows_created",
        "held_orders", "live_workflows", "class_cap", "orders_dead_lettered",
        "create_failures", "up{",
    ):  # fmt: skip
        assert any(series in q for q in in_grafana), series


def test_grafana_panels_do_not_overlap() -> None:
    panels = dashboards.grafana()["panels"]
    cells = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels]
    assert len(set(cells)) == len(cells)
