"""Calibration: the simulator against measured swarms, and its error on each.

Why: a simulator is worth what its error is. For every run directory given
(``bench/runs/<name>/``: ``result.json`` plus the swarm and the configuration it ran with, as
``bench/local_swarm.py`` writes them; ``python -m bench.swarm`` runs on the autoscaled test
cluster use the same layout), the same swarm is simulated with the same configuration on a
cluster model, and the relative error on makespan, node-seconds and latency p50/p99 is
reported. ``--fit`` grid-searches the model's per-order step time (one value for every
class: kwok pods take the same time whatever the input) for the smallest mean makespan error,
which is how ``simulate/models/test-cluster.yaml`` was fitted.

Usage:
    .venv/bin/python -m bench.calibrate bench/runs/*
    .venv/bin/python -m bench.calibrate bench/runs/* --fit 2..20 --json calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dispatcher.config import load_settings
from dispatcher.logging import configure
from dispatcher.simulate.model import ClusterModel, load_model
from dispatcher.simulate.run import simulate
from dispatcher.simulate.swarm import parse_swarm

MEASURES = ("makespan_seconds", "node_seconds", "latency_p50_seconds", "latency_p99_seconds")


#: Pools that run the platform, not the swarm (``bench.swarm`` counts them apart).
SHARED_POOLS = frozenset({"system"})


def measured(result: dict[str, Any]) -> dict[str, float | None]:
    """The four measures from a result.json, in ``bench.local_swarm``'s spelling or in
    ``bench.swarm``'s (``makespan_s``, ``latency_p50_s``, node-seconds by pool)."""
    latency = result.get("latency_seconds") or {}
    nodes = result.get("node_seconds")
    if isinstance(nodes, dict):
        nodes = sum(float(v) for k, v in nodes.items() if k not in SHARED_POOLS)
    return {
        "makespan_seconds": _number(result.get("makespan_seconds", result.get("makespan_s"))),
        "node_seconds": _number(nodes),
        "latency_p50_seconds": _number(
            latency.get("p50", result.get("latency_p50_seconds", result.get("latency_p50_s")))
        ),
        "latency_p99_seconds": _number(
            latency.get("p99", result.get("latency_p99_seconds", result.get("latency_p99_s")))
        ),
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def simulated(run: Path, result: dict[str, Any], model: ClusterModel) -> dict[str, float]:
    swarm_spec = str(result.get("swarm", "swarm.jsonl"))
    swarm = parse_swarm(swarm_spec if swarm_spec.startswith("gen:") else str(run / swarm_spec))
    settings = load_settings(run / str(result.get("config", "config.yaml")), environ={})
    results = simulate(swarm, settings=settings, model=model)
    # bench.swarm times an order to its Workflow's end (what its watch sees); local_swarm to
    # the end of the order's own DAG.
    workflow = "makespan_s" in result
    return {
        "makespan_seconds": results.makespan,
        "node_seconds": _busy_node_seconds(results.node_seconds, result),
        "latency_p50_seconds": results.latency(0.5, workflow=workflow),
        "latency_p99_seconds": results.latency(0.99, workflow=workflow),
    }


def _busy_node_seconds(by_pool: dict[str, float], result: dict[str, Any]) -> float:
    """Only the pools the measurement counted: those it lists (``node_pools``, or the keys of
    its node-seconds by pool), all of them otherwise; never the shared ones."""
    pools = result.get("node_pools")
    if pools is None and isinstance(result.get("node_seconds"), dict):
        pools = list(result["node_seconds"])
    return sum(
        v for k, v in by_pool.items() if k not in SHARED_POOLS and (pools is None or k in pools)
    )


def errors(sim: dict[str, float], real: dict[str, float | None]) -> dict[str, float | None]:
    return {
        key: None if not real[key] else (sim[key] - real[key]) / real[key]  # type: ignore[operator]
        for key in MEASURES
    }


def with_step_seconds(model: ClusterModel, seconds: float) -> ClusterModel:
    steps = {
        name: s.model_copy(update={"base_seconds": seconds}) for name, s in model.steps.items()
    }
    return model.model_copy(update={"steps": steps})


def calibrate(runs: list[Path], model: ClusterModel) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        result = json.loads((run / "result.json").read_text())
        real = measured(result)
        sim = simulated(run, result, model)
        rows.append(
            {"run": run.name, "measured": real, "simulated": sim, "error": errors(sim, real)}
        )
    return rows


def _mean_abs(rows: list[dict[str, Any]], key: str) -> float:
    values = [abs(r["error"][key]) for r in rows if r["error"][key] is not None]
    return sum(values) / len(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cluster", default="test-cluster")
    parser.add_argument("--fit", help="LOW..HIGH: grid of step seconds to fit (step 0.5)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    configure("json", "critical")
    runs = [r for r in args.runs if (r / "result.json").is_file()]
    if not runs:
        print("no run directory with a result.json", file=sys.stderr)
        return 1
    model = load_model(args.cluster)
    if args.fit:
        low, _, high = args.fit.partition("..")
        grid = [float(low) + 0.5 * i for i in range(int((float(high) - float(low)) / 0.5) + 1)]
        scored = [
            (_mean_abs(calibrate(runs, with_step_seconds(model, s)), MEASURES[0]), s) for s in grid
        ]
        best_error, best = min(scored)
        print(f"fit: step seconds {best} (mean |makespan error| {best_error:.1%})", file=sys.stderr)
        model = with_step_seconds(model, best)
    rows = calibrate(runs, model)
    print(f"{'run':<24}" + "".join(f"{m.removesuffix('_seconds'):>22}" for m in MEASURES))
    for row in rows:
        cells = []
        for key in MEASURES:
            real, sim, err = row["measured"][key], row["simulated"][key], row["error"][key]
            cells.append("-" if err is None else f"{real:.0f}->{sim:.0f} ({err:+.0%})")
        print(f"{row['run']:<24}" + "".join(f"{c:>22}" for c in cells))
    summary = {key: _mean_abs(rows, key) for key in MEASURES}
    print(f"{'mean |error|':<24}" + "".join(f"{v:>22.1%}" for v in summary.values()))
    if args.json:
        document = {"cluster": model.name, "runs": rows, "mean_abs_error": summary}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
