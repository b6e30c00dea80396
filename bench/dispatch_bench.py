"""Dispatcher benchmark: what batching and admission cost and save, against the bare client.

Why: the dispatcher's claims (keeps up with a swarm, writes far fewer objects than one Workflow
per message, a bounded publish -> Workflow delay, bounded memory while limits hold orders back)
only mean something next to what the same machine can do without it. So one run, on one
machine, on the load-grade Pub/Sub emulator (``fast``, started here), measures:

(a) ceiling    - a google-cloud-pubsub streaming-pull subscriber that only acks;
(b) naive      - one Workflow per message, created synchronously in the callback, then ack;
(c) dispatcher - ``dispatcher.service.assembly.Service`` with the built-in classes, limits raised so
                 that nothing saturates (throughput from a backlog; latency at a paced rate);
    engine     - the same runner and executor fed from memory, no Pub/Sub (explains (c));
    hold       - RSS of a fresh dispatcher process holding N orders back (class cap 0).

(b) and (c) write to the same kind of sink: ``MemorySink`` (default) or, with ``--sink kube``,
the real ``KubeWorkflowSink`` against the local test cluster (``python -m tests.cluster``),
where the Workflows created are deleted by label at the end.

(a), (c) and the engine alone run ``--rounds`` times (default 5), (a) and (c) back to back in
each round; the ratio is taken per round and the median round is reported with the spread
(``rounds``): on a shared machine one pair of runs is not a measurement.

Modules: ``measure`` (emulator, CPU, RSS), ``workload`` (orders, sink, metrics), ``rounds``,
``harness`` (Pub/Sub plumbing, the service), one per phase (``ceiling``, ``naive``,
``dispatcher_run``, ``latency``, ``held_memory``), ``report`` (targets, tables); this one is
the command line.

Usage:
    .venv/bin/python -m bench.dispatch_bench                       # memory sink, 20,000 orders
    .venv/bin/python -m bench.dispatch_bench --sink kube --json kube.json  # 5,000 / 500 naive
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench.harness import Bench
from bench.held_memory import hold_child, phase_hold
from bench.latency import phase_latency
from bench.measure import fast_emulator
from bench.naive import phase_naive
from bench.report import judge, machine_facts, render
from bench.results import PhaseResult
from bench.rounds import median_round, rounds_report, run_rounds
from dispatcher.service.assembly import settle_heap

DEFAULT_ORDERS = {"memory": 20_000, "kube": 5_000}  # (a), (c): 50 orders per Workflow in (c)
DEFAULT_NAIVE_ORDERS = {"memory": 20_000, "kube": 500}  # (b): one Workflow each, Argo runs them
DEFAULT_ROUNDS = 5  # (a) and (c) side by side; the median round is reported (bench/rounds.py)

console = Console(stderr=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch_bench",
        description="Ceiling vs naive consumer vs dispatcher on the fast Pub/Sub emulator.",
    )
    parser.add_argument(
        "--orders", type=int, help="orders for (a) and (c) (default 20,000; kube 5,000)"
    )
    parser.add_argument(
        "--naive-orders",
        type=int,
        help="orders for (b), one Workflow each (default: --orders; kube 500)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="rounds of (a), (c) and the engine alone; the median (c)/(a) round is reported "
        f"(default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--sink",
        choices=["memory", "kube"],
        default="memory",
        help="where (b) and (c) create Workflows: MemorySink, or the local test cluster",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--latency-rate", type=float, default=500.0, help="paced publishes/s")
    parser.add_argument(
        "--latency-seconds", type=float, default=10.0, help="publishing time of the latency run"
    )
    parser.add_argument(
        "--hold", type=int, default=20_000, help="orders held for the RSS figure (0 = skip)"
    )
    parser.add_argument(
        "--flow-messages",
        type=int,
        default=5_000,
        help="flow control max_messages for (a), (b) and (c)",
    )
    parser.add_argument("--hold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscription", help=argparse.SUPPRESS)
    parser.add_argument("--dead-letter-topic", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dispatcher.logging import configure

    configure("json", "warning")  # one line per Workflow would be measured too
    if args.hold_child:
        return hold_child(args.hold, args.subscription, args.dead_letter_topic)
    orders = args.orders or DEFAULT_ORDERS[args.sink]
    naive_orders = args.naive_orders or (
        args.orders if args.orders and args.sink == "memory" else DEFAULT_NAIVE_ORDERS[args.sink]
    )
    latency_orders = min(orders, int(args.latency_rate * args.latency_seconds))
    started = time.perf_counter()
    facts = machine_facts(args.sink)
    with fast_emulator() as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        bench = Bench(emulator, sink=args.sink, flow_messages=args.flow_messages)
        try:
            if args.sink == "kube":
                bench.connect_kube()
            # The collector as a dispatcher process runs it, for (a) and (c) alike: one
            # process, one set of rules, so the ratio compares the work and not the settings.
            settle_heap()
            rounds = run_rounds(bench, orders, max(1, args.rounds), log=console.log)
            middle = median_round(rounds)
            phases: dict[str, PhaseResult] = {
                "ceiling": middle.ceiling,
                "dispatcher": middle.dispatcher,
            }
            engine = middle.engine
            spread = rounds_report(rounds)
            console.log(f"(c) latency: {latency_orders:,} orders at {args.latency_rate:,.0f}/s")
            latency = phase_latency(bench, latency_orders, args.latency_rate)
            bench.delete_workflows()
            hold = None
            if args.hold > 0:
                console.log(f"hold: a fresh process holding {args.hold:,} orders")
                hold = phase_hold(bench, args.hold)
            console.log(f"(b) naive: {naive_orders:,} orders, one Workflow each")
            phases["naive"] = phase_naive(bench, naive_orders)
        finally:
            bench.delete_workflows()
            bench.close()
    targets = judge(phases, latency, hold, spread)
    render(phases, engine, latency, hold, targets, args.sink, spread)
    total = time.perf_counter() - started
    console.log(f"benchmark took {total:.0f} s")
    if args.json is not None:
        report = {
            "command": " ".join(["python -m bench.dispatch_bench", *(argv or sys.argv[1:])]),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(total, 1),
            "machine": facts,
            "phases": {k: asdict(v) for k, v in phases.items()},
            "engine_alone": engine,
            "rounds": spread,
            "latency": None if latency is None else asdict(latency),
            "hold": None if hold is None else asdict(hold),
            "targets": [asdict(t) for t in targets],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
