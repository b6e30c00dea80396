"""Pictures of a swarm run from its result.json: the run side by side, and the operators' panels.

Why one module for both: the run picture (backlog, held, live Workflows per class, nodes per
pool; dispatcher vs naive) and the dashboard picture in docs/operations.md (the panels of
dispatcher/operator/dashboards.py drawn from the dispatcher's scraped /metrics) read the same
recorded series; neither needs a Grafana. Counter panels are per-minute increases over a
trailing minute, as the dashboard's `increase(...[1m])` queries compute them.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dispatcher.operator.dashboards import PANELS

NOT_LOCAL = (
    "Backlog and oldest-order age per subscription are Cloud Monitoring's Pub/Sub metrics: the "
    "emulator has none, so those two panels are not drawn here."
)


def _by_key(samples: list[dict[str, Any]], field: str) -> dict[str, list[tuple[float, float]]]:
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    keys = {k for s in samples for k in (s.get(field) or {})}
    for s in samples:
        for key in keys:
            lines[key].append((s["t"], float((s.get(field) or {}).get(key, 0))))
    return dict(lines)


def _draw(axis: Any, lines: dict[str, list[tuple[float, float]]], title: str) -> None:
    for label, points in sorted(lines.items()):
        if points and any(v for _, v in points):
            axis.plot([t for t, _ in points], [v for _, v in points], label=label)
    axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=6, loc="upper right")


def run_picture(result: dict[str, Any], path: Path) -> None:
    """Rows: backlog, held, live per class, nodes per pool; a column per consumer."""
    consumers = list(result["series"])
    rows = ("backlog", "held", "live", "nodes")
    titles = {
        "backlog": "orders waiting (published, not in a Workflow nor held)",
        "held": "orders held by the dispatcher, per class",
        "live": "live Workflows, per environment/class",
        "nodes": "nodes per pool",
    }
    figure, axes = plt.subplots(len(rows), len(consumers), figsize=(6 * len(consumers), 9),
                                squeeze=False, sharex="col")  # fmt: skip
    for col, consumer in enumerate(consumers):
        samples = result["series"][consumer]
        mine = result if consumer == "dispatcher" else result["naive"]
        for row, field in enumerate(rows):
            axis = axes[row][col]
            lines = _by_key(samples, field)
            env = result["run"]["environment" if consumer == "dispatcher" else "naive_environment"]
            if field == "backlog":
                lines = {k: v for k, v in lines.items() if k == env}
            if field == "live":  # the other consumer's Workflows, if any, are not this one's
                lines = {k: v for k, v in lines.items() if k.startswith(f"{env}/")}
            if field == "held" and consumer != "dispatcher":
                lines = {}
            _draw(axis, lines, f"{consumer}: {titles[field]}")
        axes[0][col].set_title(
            f"{consumer}: {mine['orders']} orders, makespan {mine['makespan_s']:.0f} s\n"
            + titles["backlog"], fontsize=9,
        )  # fmt: skip
        axes[-1][col].set_xlabel("seconds from the first publish", fontsize=8)
    figure.suptitle(f"swarm run {result['run']['name']}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _series(result: dict[str, Any], name: str, label: str) -> dict[str, list[tuple[float, float]]]:
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for scrape in result.get("scrapes", []):
        totals: dict[str, float] = defaultdict(float)
        for labels, value in scrape["series"].get(name, []):
            totals[labels.get(label, "?")] += value
        for key, value in totals.items():
            lines[key].append((scrape["t"], value))
    return dict(lines)


def _per_minute(
    lines: dict[str, list[tuple[float, float]]],
) -> dict[str, list[tuple[float, float]]]:
    """increase over the trailing 60 s of each counter, as the dashboard's queries have it."""
    out: dict[str, list[tuple[float, float]]] = {}
    for key, points in lines.items():
        rates, start = [], 0
        for t, value in points:
            while points[start][0] < t - 60:
                start += 1
            rates.append((t, value - points[start][1]))
        out[key] = rates
    return out


def dashboard_picture(result: dict[str, Any], path: Path) -> None:
    """The dashboard panels that have a local source, from the scraped series of the run."""
    ups = [(s["t"], 1.0) for s in result.get("scrapes", [])]
    live = _series(result, "burst_dispatcher_live_workflows", "size_class")
    caps = _series(result, "burst_dispatcher_class_cap", "size_class")
    panels = {
        PANELS[2].title: _per_minute(
            _series(result, "burst_dispatcher_workflows_created_total", "size_class")
        ),
        PANELS[3].title: _series(result, "burst_dispatcher_held_orders", "size_class"),
        PANELS[4].title: {
            **{f"live {k}": v for k, v in live.items()},
            **{f"cap {k}": v for k, v in caps.items()},
        },
        PANELS[5].title: _per_minute(
            _series(result, "burst_dispatcher_orders_dead_lettered_total", "reason")
        ),
        PANELS[6].title: _per_minute(
            _series(result, "burst_dispatcher_create_failures_total", "kind")
        ),
        PANELS[7].title: {"replicas": ups},
    }
    figure, axes = plt.subplots(3, 2, figsize=(11, 9), squeeze=False)
    for axis, (title, lines) in zip((a for row in axes for a in row), panels.items(), strict=True):
        _draw(axis, lines, title)
        if not any(any(v for _, v in p) for p in lines.values()):
            axis.text(0.5, 0.5, "none during the run", ha="center", transform=axis.transAxes)
    figure.suptitle(
        f"burst-dispatcher panels, swarm run {result['run']['name']} "
        "(x: seconds from the first publish)", fontsize=10,
    )  # fmt: skip
    figure.text(0.5, 0.005, NOT_LOCAL, ha="center", fontsize=7, wrap=True)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    import json

    saved = json.loads(Path(sys.argv[1]).read_text())
    run_picture(saved, Path(sys.argv[1]).with_name("swarm.png"))
    dashboard_picture(saved, Path(sys.argv[1]).with_name("dashboard.png"))
