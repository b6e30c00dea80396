"""Calibration: the simulator against measured swarms, and its error on each.

Why: a simulator is worth what its error is. For every run directory given
(``bench/runs/<name>/``: ``result.json`` plus the swarm and the configuration it ran with, as
``bench/local_swarm.py`` writes them; ``python -m bench.swarm`` runs on the autoscaled test
cluster use the same layout), the same swarm is simulated with the same configuration on a
cluster model, and the relative error on makespan, node-seconds and latency p50/p99 is
reported. A run of the autoscaled stack that names its economics profile (``economics.yaml``
in the run directory, or the file its ``run.economics`` names) is simulated with that profile's
step times and preemption share, so a model fits runs made under different profiles.

``--fit FIELD=LOW..HIGH/STEP`` grid-searches one number of the model (``controller.<field>``,
``autoscaler.<field>``, ``pools.<field>`` for every pool, ``pools.<pool>.<field>``, or a
top-level field) for the
smallest mean error over the runs given (makespan, or ``--objective all``: the mean of the
four), which is how the numbers marked "fitted" in ``simulate/models/test-cluster*.yaml`` were
found. The runs given to a fit are its sample: report the others as out of sample.

Usage:
    .venv/bin/python -m bench.calibrate bench/runs/local-*
    .venv/bin/python -m bench.calibrate bench/runs/A bench/runs/B \
        --cluster test-cluster-autoscaled --fit controller.step_gap_seconds=0..3/0.5 \
        --objective all --json calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dispatcher.config import load_settings
from dispatcher.local import economics
from dispatcher.logging import configure
from dispatcher.simulate.model import ClusterModel, Steps, load_model
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


def run_economics(run: Path, result: dict[str, Any]) -> economics.Economics | None:
    """The economics profile the run was made with, when it says so and the file is here."""
    named = (result.get("run") or {}).get("economics")
    for path in (run / "economics.yaml", Path(str(named)) if named else None):
        if path is not None and path.is_file():
            return economics.load(path)
    return None


def with_economics(model: ClusterModel, profile: economics.Economics) -> ClusterModel:
    steps = {
        name: Steps(base_seconds=run.a, seconds_per_gib=run.b)
        for name, run in profile.run_seconds.items()
    }
    share = profile.spot_preemption_rate

    def pools(listed: list[Any]) -> list[Any]:
        return [p.model_copy(update={"preemptions_per_attempt": share if p.spot else 0.0})
                for p in listed]  # fmt: skip

    environments = {env: pools(listed) for env, listed in model.environments.items()}
    return model.model_copy(
        update={"steps": steps, "pools": pools(model.pools), "environments": environments}
    )


def simulated(run: Path, result: dict[str, Any], model: ClusterModel) -> dict[str, float]:
    swarm_spec = str(result.get("swarm", "swarm.jsonl"))
    swarm = parse_swarm(swarm_spec if swarm_spec.startswith("gen:") else str(run / swarm_spec))
    settings = load_settings(run / str(result.get("config", "config.yaml")), environ={})
    profile = run_economics(run, result)
    if profile is not None:
        model = with_economics(model, profile)
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


def with_value(model: ClusterModel, field: str, value: float) -> ClusterModel:
    """The model with one number changed: ``controller.x``, ``autoscaler.x``, ``pools.x`` (all
    pools, every environment's too), ``pools.<pool>.x`` (that pool), or a top-level ``x``; a
    profile map gets both profiles."""
    section, _, name = field.rpartition(".")
    if section == "pools" or section.startswith("pools."):
        only = section.removeprefix("pools").removeprefix(".")

        def change(listed: list[Any]) -> list[Any]:
            return [p.model_copy(update={name: _typed(getattr(p, name), value)})
                    if only in ("", p.name) else p for p in listed]  # fmt: skip

        environments = {env: change(listed) for env, listed in model.environments.items()}
        return model.model_copy(update={"pools": change(model.pools), "environments": environments})
    if section:
        part = getattr(model, section)
        current = getattr(part, name)
        new = dict.fromkeys(current, value) if isinstance(current, dict) else _typed(current, value)
        return model.model_copy(update={section: part.model_copy(update={name: new})})
    return model.model_copy(update={name: _typed(getattr(model, name), value)})


def _typed(current: Any, value: float) -> float | int:
    """A whole number where the model holds an int (node counts, retry limits)."""
    return int(value) if isinstance(current, int) and not isinstance(current, bool) else value


def parse_fit(spec: str) -> tuple[str, list[float]]:
    """``FIELD=LOW..HIGH/STEP`` -> the field and its grid."""
    field, _, grid = spec.partition("=")
    span, _, step_text = grid.partition("/")
    low, _, high = span.partition("..")
    step = float(step_text or 0.5)
    count = round((float(high) - float(low)) / step) + 1
    return field, [round(float(low) + step * i, 6) for i in range(count)]


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
    parser.add_argument("--fit", help="FIELD=LOW..HIGH/STEP: a model number to fit (grid)")
    parser.add_argument("--objective", choices=["makespan", "all"], default="makespan")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a model number for these runs (what they ran with), as --fit names it",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    configure("json", "critical")
    runs = [r for r in args.runs if (r / "result.json").is_file()]
    if not runs:
        print("no run directory with a result.json", file=sys.stderr)
        return 1
    model = load_model(args.cluster)
    for change in args.set:
        field, _, value = change.partition("=")
        model = with_value(model, field, float(value))
    if args.fit:
        field, grid = parse_fit(args.fit)
        keys = MEASURES if args.objective == "all" else MEASURES[:1]

        def score(value: float) -> float:
            rows = calibrate(runs, with_value(model, field, value))
            return sum(_mean_abs(rows, key) for key in keys) / len(keys)

        best_error, best = min((score(value), value) for value in grid)
        print(f"fit: {field} = {best} (mean |error| {best_error:.1%})", file=sys.stderr)
        model = with_value(model, field, best)
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
