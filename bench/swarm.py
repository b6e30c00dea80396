"""`python -m bench.swarm`: a whole swarm's time and cost, dispatcher vs one Workflow per order.

Why: the product's promise (a swarm finishes fast and costs little: batches on spot pools, the
pools back to nothing afterwards) is measured end to end here, on the local stack (`dispatcher
local up`): example orders (heavy-tailed sizes) are published to the emulator, the running
`dispatcher run` turns them into Workflows, the real Argo controller runs them on kwok nodes.
The same run first sends a (smaller) swarm through the naive consumer (bench/swarm_naive.py),
then the dispatcher's swarm; each phase is watched (bench/swarm_watch.py) until its last
Workflow has finished and, when an autoscaler made the nodes, until the pools are empty again.

Written to ``bench/runs/<name>/``: ``result.json``, ``swarm.jsonl`` (the dispatcher's orders),
``naive.jsonl``, ``config.yaml`` (the dispatcher's configuration as the run left it),
``swarm.png`` (bench/swarm_plot.py) and ``dashboard.png`` (the operators' panels from the
scraped /metrics). ``result.json`` holds the dispatcher's figures at the top level and the naive
consumer's under ``naive``, with the same keys (stable; issue 13 calibrates against them):

- ``orders``: valid orders of the swarm; ``published``, ``dead_lettered``, ``publish_s``
- ``workflows``; ``makespan_s``: first publish -> last Workflow finished
- ``latency_p50_s``, ``latency_p99_s``: an order's publish (the swarm's publish start) -> its
  Workflow seen Succeeded by the watch
- ``workflows_per_min``, ``orders_per_min``: finished Workflows, Succeeded orders per minute of
  makespan (one Argo controller)
- ``peak_workflow_objects``: the consumer's Workflow objects in the namespace, at most
- ``etcd_bytes_start``, ``etcd_bytes_peak``: etcd's ``etcd_mvcc_db_total_size_in_bytes``
- ``node_seconds``: {pool: s} of Node lifetime (watched) from the publish to the end of the
  phase's window (back to zero, or the last Workflow when nodes are fixed)
- ``preemptions``: step attempts run again (Retry nodes with more than one child);
  ``preempted_orders_retried``: orders with such a step
- ``back_to_zero_s``: last Workflow -> no node in any non-system pool; null when nodes are fixed
  or when the pools were not empty within ``--zero-timeout`` (then node-seconds run to its end)
- ``cost_usd``: {pool: $} at bench/prices.yaml; ``cost_per_order_usd``: all pools but ``system``
  over Succeeded orders
- ``check``: lost, duplicated, failed_workflows, succeeded_once (by the order-ids annotation)
- ``series``: {dispatcher|naive: samples}; each sample has ``t`` (s from the phase's publish),
  ``live`` {"<environment>/<class>": n}, ``workflow_objects``, ``orders_in_workflows``
  {environment: n}, ``held`` {class: n}, ``dead_lettered``, ``nodes`` {pool: n},
  ``etcd_bytes``, ``backlog`` (published valid orders not yet in a Workflow nor held)
- ``scrapes``: the dispatcher's raw /metrics series per sample (``t`` as above)
- ``run``: name, date, machine, limits, sizes, whether nodes were autoscaled
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import swarm_plot, swarm_report
from bench.swarm_cost import load_prices
from bench.swarm_result import SHARED_POOLS, Phase, figures, series
from bench.swarm_setup import Rig, rig
from dispatcher.local.nodepools import consolidate_after
from dispatcher.local.swarm import publish
from dispatcher.operator.examples import example_orders

RUNS = Path(__file__).with_name("runs")
ECONOMICS = Path(__file__).with_name("swarm_economics.yaml")


def _wait(rec_done: Any, *, deadline: float, what: str, console: Console) -> bool:
    shown = 0.0
    while time.monotonic() < deadline:
        done, progress = rec_done()
        if done:
            return True
        if time.monotonic() - shown > 30:
            console.print(f"  {what}: {progress}", highlight=False)
            shown = time.monotonic()
        time.sleep(1.0)
    return False


def run_phase(
    setup: Rig, *, consumer: str, count: int, seed: int, args: argparse.Namespace, console: Console
) -> Phase:
    """Publish one consumer's swarm and follow it to its last Workflow and back to zero."""
    environment = setup.environment if consumer == "dispatcher" else setup.naive_environment
    topic_stack = setup.stack if consumer == "dispatcher" else setup.naive_stack
    dead_before = setup.dead_lettered()
    if consumer == "naive":
        setup.naive.start()
    setup.recorder.sample()  # the counters' values just before: the panels' first increase
    t0 = time.monotonic()
    swarm = publish(topic_stack, count=count, seed=seed, invalid_share=args.invalid_share)
    setup.published[environment] = (len(swarm.valid), swarm.started)
    published_s = time.monotonic() - t0
    console.print(f"{consumer}: published {swarm.published} in {published_s:.1f}s")

    def done() -> tuple[bool, str]:
        finished, live, seen = setup.progress(environment, swarm.valid)
        dead = setup.dead_lettered() - dead_before if consumer == "dispatcher" else swarm.invalid
        ok = seen >= len(swarm.valid) and live == 0 and dead >= swarm.invalid
        return (
            ok,
            f"{seen}/{len(swarm.valid)} orders in Workflows, {finished} finished, {live} live",
        )

    deadline = swarm.started + args.timeout
    finished = _wait(done, deadline=deadline, what=consumer, console=console)
    if consumer == "naive":
        setup.naive.stop()
    ended = time.monotonic()
    zero_at = None
    waited = ended
    if setup.autoscaled():
        limit = ended + args.zero_timeout
        _wait(lambda: (setup.pools_empty(SHARED_POOLS), "nodes left"), deadline=limit,
              what="back to zero", console=console)  # fmt: skip
        zero_at = setup.zero_since(SHARED_POOLS)
        waited = time.monotonic()
    if not finished:
        console.print(f"[red]{consumer}: not finished within --timeout {args.timeout}s[/red]")
    return Phase(
        consumer=consumer, environment=environment, published=swarm.published,
        valid=swarm.valid, started=swarm.started, published_s=published_s, ended=ended,
        zero_at=zero_at, window_end=zero_at or waited,
        dead_lettered=max(0, setup.dead_lettered() - dead_before),
    )  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.swarm", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--orders", type=int, default=2000, help="dispatcher swarm size")
    parser.add_argument("--naive-orders", type=int, default=200, help="naive swarm size (0: none)")
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument(
        "--naive-seed", type=int, default=None,
        help="the naive swarm's seed (default: --seed, the same orders on both sides)",
    )  # fmt: skip
    parser.add_argument("--invalid-share", type=float, default=0.01)
    parser.add_argument("--name", default=None, help="run name (default: date-time)")
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("-o", "--output", type=Path, default=None, help="also write JSON here")
    parser.add_argument("--timeout", type=float, default=2100, help="per phase, seconds")
    parser.add_argument("--zero-timeout", type=float, default=600)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument(
        "--autoscaling", action="store_true",
        help="run on `dispatcher local up --autoscaling` (Karpenter, pools from zero)",
    )  # fmt: skip
    parser.add_argument(
        "--economics", type=Path, default=ECONOMICS,
        help="with --autoscaling: the economics profile (run time per input size, spot rate)",
    )  # fmt: skip
    parser.add_argument(
        "--extra-nodes", type=int, default=0,
        help="fixed stack only: kwok nodes added per dev pool for the run",
    )  # fmt: skip
    parser.add_argument(
        "--environment", choices=["dev", "prod"], default="dev",
        help="whose overlays the stack runs (prod: the prod pools and config)",
    )  # fmt: skip
    parser.add_argument("--check", action="store_true", help="exit 1 on any lost/duplicated order")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console()
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    # The same swarm on both sides by default: the naive Workflows live in their own namespace,
    # and the recorder keys Workflows by namespace and name.
    naive_seed = args.naive_seed if args.naive_seed is not None else seed
    name = args.name or datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    out = args.runs_dir / name
    out.mkdir(parents=True, exist_ok=True)
    prices = load_prices()
    with rig(args, console=console) as setup:
        phases = []
        if args.naive_orders:
            phases.append(run_phase(setup, consumer="naive", count=args.naive_orders,
                                    seed=naive_seed, args=args, console=console))  # fmt: skip
        phases.append(run_phase(setup, consumer="dispatcher", count=args.orders, seed=seed,
                                args=args, console=console))  # fmt: skip
        setup.recorder.stop()
        with setup.recorder.snapshot():
            workflows = list(setup.recorder.workflows.values())
            nodes = list(setup.recorder.nodes.values())
            samples = list(setup.recorder.samples)
            scrapes = list(setup.recorder.scrapes)
        results = {p.consumer: figures(p, workflows=workflows, nodes=nodes, samples=samples,
                                       prices=prices) for p in phases}  # fmt: skip
        for phase in phases:
            for sample in samples:
                valid, _ = setup.published.get(phase.environment, (0, 0.0))
                held = sum(sample["held"].values()) if phase.consumer == "dispatcher" else 0
                sample.setdefault("backlog", {})[phase.environment] = max(
                    0, valid - sample["orders_in_workflows"].get(phase.environment, 0) - held
                )
        main_phase = phases[-1]
        result: dict[str, Any] = {**results["dispatcher"]}
        if "naive" in results:
            result["naive"] = results["naive"]
        result["series"] = {p.consumer: series(p, samples) for p in phases}
        result["scrapes"] = [
            {**s, "t": round(s["t"] - main_phase.started, 2)} for s in scrapes
            if main_phase.started - 1.5 <= s["t"] <= main_phase.window_end
        ]  # fmt: skip
        result["run"] = {
            "name": name, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "seed": seed, "naive_seed": naive_seed, "cpus": os.cpu_count(),
            "autoscaled": setup.autoscaled(),
            "extra_nodes_per_pool": args.extra_nodes, "naive_orders": args.naive_orders,
            "economics": str(args.economics) if args.autoscaling else None,
            "consolidate_after": consolidate_after() if args.autoscaling else None,
            "prices": {k: prices[k] for k in ("date", "region", "source")},
            "limits": setup.limits, "environment": setup.environment,
            "naive_environment": setup.naive_environment,
        }  # fmt: skip
        (out / "config.yaml").write_text(setup.config_text())
    (out / "swarm.jsonl").write_text(
        "\n".join(example_orders(args.orders, seed=seed, invalid_share=args.invalid_share)) + "\n"
    )
    if args.naive_orders:
        lines = example_orders(args.naive_orders, seed=naive_seed, invalid_share=args.invalid_share)
        (out / "naive.jsonl").write_text("\n".join(lines) + "\n")
    text = json.dumps(result, indent=1, default=str)
    (out / "result.json").write_text(text)
    if args.output:
        args.output.write_text(text)
    swarm_plot.run_picture(result, out / "swarm.png")
    swarm_plot.dashboard_picture(result, out / "dashboard.png")
    console.print(swarm_report.table(result))
    console.print(f"written to {out}")
    bad = [c for c, r in results.items() if r["check"]["lost"] or r["check"]["duplicated"]]
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
