"""Simulator benchmark: how long a million-order swarm takes to simulate on this machine.

Why a bench and not a test: the target (1,000,000 orders in under 60 s, issue 13) is a speed
claim, and speed on a shared 2-core machine is measured, never asserted in a unit test. Each
round generates the swarm on the fly (as ``dispatcher simulate gen:...`` does) and runs the
whole simulation; the report gives wall and CPU time (CPU is what other work on the machine
does not inflate), the orders per second, and the ratio of simulated to wall time. ``--profile``
prints cProfile's top functions instead (profile first, then optimise).

Usage:
    .venv/bin/python -m bench.simulate_bench                        # 1,000,000 orders, 1 round
    .venv/bin/python -m bench.simulate_bench --orders 100000 --rounds 3 --json out.json
    .venv/bin/python -m bench.simulate_bench --orders 50000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dispatcher.config import load_settings
from dispatcher.logging import configure
from dispatcher.simulate.model import load_model
from dispatcher.simulate.run import simulate
from dispatcher.simulate.swarm import parse_swarm

TARGET_SECONDS = 60.0
TARGET_ORDERS = 1_000_000


def one_round(spec: str, config: str, cluster: str, *, pools_scale: float = 1) -> dict[str, Any]:
    settings = load_settings(config, environ={})
    model = load_model(cluster)
    if pools_scale != 1:
        pools = [
            p.model_copy(update={"max_nodes": round(p.max_nodes * pools_scale)})
            for p in model.pools
        ]
        model = model.model_copy(update={"pools": pools})
    swarm = parse_swarm(spec)
    wall, cpu = time.perf_counter(), time.process_time()
    results = simulate(swarm, settings=settings, model=model)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "wall_seconds": round(wall, 2),
        "cpu_us_per_delivery": round(cpu / max(1, swarm.count + results.reparked) * 1e6, 1),
        "cpu_seconds": round(cpu, 2),
        "orders_per_second": round(swarm.count / wall),
        "simulated_seconds": round(results.simulated_seconds),
        "simulated_per_wall": round(results.simulated_seconds / wall),
        "makespan_seconds": round(results.makespan),
        "completed": len(results.latencies),
        "workflows": sum(results.workflows.values()),
        "reparked": results.reparked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=TARGET_ORDERS)
    parser.add_argument("--curve", default="burst", help="burst, or e.g. steady:rate=500")
    parser.add_argument("--config", default="config/prod.yaml")
    parser.add_argument("--cluster", default="gke")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--pools-scale",
        type=float,
        default=1,
        help="multiply every pool's max_nodes (a cluster that keeps up: no re-parks)",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    configure("json", "critical")
    curve, _, options = args.curve.partition(":")
    spec = f"gen:{curve}:n={args.orders}" + (f",{options}" if options else "")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(one_round, spec, args.config, args.cluster, pools_scale=args.pools_scale)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        return 0
    rounds = []
    for index in range(args.rounds):
        rounds.append(one_round(spec, args.config, args.cluster, pools_scale=args.pools_scale))
        print(f"round {index + 1}: {json.dumps(rounds[-1])}", file=sys.stderr)
    wall = statistics.median(r["wall_seconds"] for r in rounds)
    report = {
        "swarm": spec,
        "config": args.config,
        "cluster": args.cluster,
        "pools_scale": args.pools_scale,
        "median_wall_seconds": wall,
        "target": f"{TARGET_ORDERS:,} orders in < {TARGET_SECONDS:.0f} s",
        "met": args.orders >= TARGET_ORDERS and wall < TARGET_SECONDS,
        "rounds": rounds,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
