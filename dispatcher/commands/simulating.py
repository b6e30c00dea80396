"""``dispatcher simulate``: what a swarm will cost and how long it will take, before it comes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.table import Table

from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.output import console as make_console
from dispatcher.commands.output import output_option, print_document
from dispatcher.core.settings import Settings
from dispatcher.simulate.model import ClusterModel, load_model
from dispatcher.simulate.plot import PlotUnavailable, plot
from dispatcher.simulate.results import Results
from dispatcher.simulate.run import simulate
from dispatcher.simulate.swarm import Swarm, parse_swarm
from dispatcher.simulate.sweep import Point, Sweep, parse_sweep, run_sweep


@click.command("simulate")
@click.argument("swarm_spec", metavar="SWARM")
@config_option
@click.option(
    "--cluster",
    "cluster_path",
    required=True,
    help="Cluster model YAML, or a shipped one by name: gke, test-cluster,"
    " test-cluster-autoscaled.",
)
@click.option(
    "--profile",
    type=click.Choice(["balanced", "optimize-utilization"]),
    default=None,
    help="Autoscaling profile (default: the model's).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Spot preemption draws.")
@click.option(
    "--sweep",
    "sweep_spec",
    default=None,
    help="Vary one limit, e.g. large.max_live_workflows=5..50 (10 values; /STEP for a step); "
    "prints the cost/time frontier with its knee.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write backlog, live Workflows and nodes per pool over time to this PNG.",
)
@output_option
def simulate_command(
    swarm_spec: str,
    config_path: Path | None,
    cluster_path: str,
    profile: str | None,
    seed: int,
    sweep_spec: str | None,
    plot_path: Path | None,
    output: str,
) -> None:
    """Simulate a swarm on a cluster model with the dispatcher's own decision code.

    SWARM is a JSON-lines file of orders (all published at once; FILE@ramp:seconds=600 or
    FILE@steady:rate=50 for an arrival curve) or a generated swarm of example orders:
    gen:burst:n=100000, gen:ramp:n=5000,seconds=600, gen:steady:n=5000,rate=20 (seed=N to vary).

    The real engine (intake, classification, batching, admission, rate limit) runs on a
    simulated clock; the cluster model stands in for Pub/Sub delivery, the API server, Argo's
    controller, node pools under the autoscaler and spot preemption. Nothing is contacted.
    """
    settings = settings_or_exit(config_path)
    try:
        swarm = parse_swarm(swarm_spec)
        model = load_model(cluster_path)
        sweep = parse_sweep(sweep_spec, settings) if sweep_spec else None
    except (OSError, ValueError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from exc
    if profile is not None:
        model = model.with_profile(profile)  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        if sweep is not None:
            points = run_sweep(
                sweep, settings, lambda s: simulate(swarm, settings=s, model=model, seed=seed)
            )
            _show_sweep(sweep, points, output)
            return
        results = simulate(swarm, settings=settings, model=model, seed=seed)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from exc
    wall = time.perf_counter() - started
    if plot_path is not None:
        try:
            plot(results, plot_path, title=f"{swarm.describe()} on {model.name}")
        except PlotUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    document = _document(results, swarm=swarm, model=model, settings=settings, wall=wall)
    if output != "table":
        print_document(document, output)
        return
    _show(results, swarm=swarm, model=model, wall=wall)


def _document(
    results: Results, *, swarm: Swarm, model: ClusterModel, settings: Settings, wall: float
) -> dict[str, Any]:
    return {
        "swarm": swarm.describe(),
        "cluster": model.name,
        "profile": model.autoscaler.profile,
        "environment": settings.environment,
        **results.to_document(),
        "wall_seconds": round(wall, 3),
    }


def _show(results: Results, *, swarm: Swarm, model: ClusterModel, wall: float) -> None:
    console = make_console()
    doc = results.to_document()
    summary = Table(title=f"{swarm.describe()} on {model.name} ({model.autoscaler.profile})")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    latency = doc["latency_seconds"]
    peaks = doc["peak_live_workflows"]
    rows = [
        ("makespan", _duration(results.makespan)),
        ("order latency p50 / p99", f"{_duration(latency['p50'])} / {_duration(latency['p99'])}"),
        (
            "orders completed / dead-lettered / not completed",
            f"{doc['completed']:,} / {results.dead_lettered:,} / {doc['not_completed']:,}",
        ),
        ("workflows", ", ".join(f"{k} {v:,}" for k, v in results.workflows.items())),
        ("peak live Workflows", ", ".join(f"{k} {v}" for k, v in peaks.items())),
        ("peak Workflow objects", f"{results.peak_objects:,}"),
        ("preempted attempts / orders retried", f"{results.preemptions} / {results.retries}"),
        ("re-parked (held past the lease)", f"{results.reparked:,}"),
        ("node-hours / cost", f"{doc['node_hours']:,.1f} h / ${doc['cost_usd']:,.2f}"),
        ("simulated in", f"{wall:.1f} s"),
    ]
    for row in rows:
        summary.add_row(*row)
    console.print(summary)
    pools = Table(title="Node pools")
    for column in ("pool", "peak nodes", "node-hours", "cost (USD)"):
        pools.add_column(column, justify="left" if column == "pool" else "right")
    for name, pool in doc["pools"].items():
        pools.add_row(
            name, str(pool["peak_nodes"]), f"{pool['node_hours']:,.2f}", f"{pool['cost_usd']:,.2f}"
        )
    console.print(pools)


def _show_sweep(sweep: Sweep, points: list[Point], output: str) -> None:
    if output != "table":
        print_document(
            {
                "sweep": sweep.label,
                "points": [
                    {
                        "value": p.value,
                        "makespan_seconds": round(p.makespan, 3),
                        "cost_usd": round(p.cost, 4),
                        "node_hours": round(p.node_hours, 4),
                        "latency_p99_seconds": round(p.p99, 3),
                        "frontier": p.frontier,
                        "knee": p.knee,
                    }
                    for p in points
                ],
            },
            output,
        )
        return
    table = Table(title=f"Cost/time frontier of {sweep.label} (* on the frontier, <- knee)")
    for column in (sweep.label, "makespan", "p99 latency", "node-hours", "cost (USD)", ""):
        table.add_column(column, justify="right" if column else "left")
    for p in points:
        mark = ("*" if p.frontier else "") + (" <- knee" if p.knee else "")
        value = f"{p.value:g}"
        table.add_row(
            value,
            _duration(p.makespan),
            _duration(p.p99),
            f"{p.node_hours:,.1f}",
            f"{p.cost:,.2f}",
            mark,
        )
    make_console().print(table)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{seconds:.1f}s"
