"""The report: targets judged, tables on the terminal, facts about the machine.

Tables go to stdout (rich); ``--json`` writes the same figures (see ``dispatch_bench.main``).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.results import HoldResult, LatencyResult, PhaseResult, Target

TARGET_RATIO = 0.80
TARGET_WRITE_FACTOR = 10.0
TARGET_LATENCY_SLACK_S = 1.0
TARGET_RSS_BYTES = 250_000_000  # 250 MB


def judge(
    phases: dict[str, PhaseResult],
    latency: LatencyResult | None,
    hold: HoldResult | None,
    rounds: dict[str, Any] | None = None,
) -> list[Target]:
    targets: list[Target] = []
    ceiling, naive, dispatcher = phases["ceiling"], phases["naive"], phases["dispatcher"]
    ratio = dispatcher.orders_per_second / ceiling.orders_per_second
    across = ""
    if rounds is not None and rounds["rounds"] > 1:
        low, high = rounds["ratio"]["min"], rounds["ratio"]["max"]
        by_cpu = rounds["cpu_ratio"]["median"]
        across = f"; median of {rounds['rounds']} rounds, {low:.0%}-{high:.0%}; by CPU {by_cpu:.0%}"
    targets.append(
        Target(
            "(c)/(a) throughput",
            f"{ratio:.0%} ({dispatcher.orders_per_second:,.0f} / "
            f"{ceiling.orders_per_second:,.0f} orders/s{across})",
            f">= {TARGET_RATIO:.0%}",
            ratio >= TARGET_RATIO,
        )
    )
    if naive.writes_per_order and dispatcher.writes_per_order:
        factor = naive.writes_per_order / dispatcher.writes_per_order
        targets.append(
            Target(
                "API writes per order (b)/(c)",
                f"{factor:.0f}x fewer ({naive.writes_per_order:.3f} vs "
                f"{dispatcher.writes_per_order:.3f})",
                f">= {TARGET_WRITE_FACTOR:.0f}x fewer",
                factor >= TARGET_WRITE_FACTOR,
            )
        )
    if latency is not None:
        bound = latency.linger_s + TARGET_LATENCY_SLACK_S
        targets.append(
            Target(
                f"publish -> created p50 / p99 at {latency.publish_rate:,.0f}/s",
                f"{latency.p50_s:.3f} s / {latency.p99_s:.3f} s (max {latency.max_s:.3f} s)",
                f"<= linger + 1 s = {bound:.1f} s",
                latency.p99_s <= bound,
            )
        )
    if hold is not None:
        targets.append(
            Target(
                f"RSS holding {hold.held_orders:,} orders",
                f"{hold.rss_bytes / 1e6:.0f} MB ({hold.rss_bytes / 2**20:.0f} MiB; "
                f"{hold.bytes_per_held_order:,.0f} B/order above a "
                f"{hold.baseline_rss_bytes / 1e6:.0f} MB start)",
                f"<= {TARGET_RSS_BYTES / 1e6:.0f} MB",
                hold.rss_bytes <= TARGET_RSS_BYTES,
            )
        )
    return targets


def render(
    phases: dict[str, PhaseResult],
    engine: dict[str, float],
    latency: LatencyResult | None,
    hold: HoldResult | None,
    targets: list[Target],
    sink: str,
    rounds: dict[str, Any] | None = None,
) -> None:
    out = Console(width=None if sys.stdout.isatty() else 160)
    if rounds is not None:
        out.print(rounds_table(rounds))
    table = Table(
        title=f"Throughput from a backlog (sink: {sink}; CPU in cores of {os.cpu_count()})"
    )
    for column in ("phase", "orders", "seconds", "orders/s", "API writes", "writes/order"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    for column in ("CPU bench", "µs CPU/order", "CPU emulator", "CPU machine (niced)"):
        table.add_column(column, justify="right")
    labels = {"ceiling": "(a) pull+ack", "naive": "(b) naive", "dispatcher": "(c) dispatcher"}
    for key in ("ceiling", "naive", "dispatcher"):
        p = phases[key]
        table.add_row(
            labels[key],
            f"{p.orders:,}",
            f"{p.seconds:.2f}",
            f"{p.orders_per_second:,.0f}",
            "-" if p.api_writes is None else f"{p.api_writes:,}",
            "-" if p.writes_per_order is None else f"{p.writes_per_order:.3f}",
            f"{p.cpu.bench:.2f}",
            f"{p.bench_cpu_us_per_order:.0f}",
            f"{p.cpu.emulator:.2f}",
            f"{p.cpu.machine:.2f} ({p.cpu.niced:.2f})",
        )
    table.add_row(
        "(c) engine alone",
        f"{engine['orders']:,.0f}",
        f"{engine['seconds']:.2f}",
        f"{engine['orders_per_second']:,.0f}",
        "",
        "",
        f"engine {engine['engine_thread_us_per_order']:.0f} µs",
        f"{engine['cpu_us_per_order']:.0f}",
        "-",
        "",
    )
    out.print(table)
    by_thread = Table(title="CPU per order by thread of the benchmark process (µs)")
    by_thread.add_column("phase")
    by_thread.add_column("threads (largest first)")
    for key in ("ceiling", "naive", "dispatcher"):
        spent = phases[key].thread_cpu_us_per_order
        by_thread.add_row(labels[key], ", ".join(f"{n} {us:.0f}" for n, us in spent.items()))
    out.print(by_thread)
    if latency is not None:
        lat = Table(
            title=f"(c) publish -> Workflow created, paced at {latency.publish_rate:,.0f}/s "
            f"(achieved {latency.achieved_publish_rate:,.0f}/s)"
        )
        for column in ("orders", "workflows", "p50", "p90", "p99", "max", "mean", "linger"):
            lat.add_column(column, justify="right")
        lat.add_column("CPU bench / emulator / machine (niced)", justify="right")
        lat.add_row(
            f"{latency.orders:,}",
            f"{latency.workflows:,}",
            *(
                f"{v:.3f} s"
                for v in (
                    latency.p50_s,
                    latency.p90_s,
                    latency.p99_s,
                    latency.max_s,
                    latency.mean_s,
                )
            ),
            f"{latency.linger_s:g} s",
            f"{latency.cpu.bench:.2f} / {latency.cpu.emulator:.2f} / {latency.cpu.machine:.2f}"
            f" ({latency.cpu.niced:.2f})",
        )
        out.print(lat)
    if hold is not None:
        mem = Table(title="Fresh dispatcher process holding orders back (class caps 0)")
        for column in ("held", "to hold", "RSS", "peak RSS", "RSS at start", "per held order"):
            mem.add_column(column, justify="right")
        mem.add_row(
            f"{hold.held_orders:,}",
            f"{hold.seconds_to_hold:.1f} s",
            f"{hold.rss_bytes / 1e6:.0f} MB",
            f"{hold.hwm_bytes / 1e6:.0f} MB",
            f"{hold.baseline_rss_bytes / 1e6:.0f} MB",
            f"{hold.bytes_per_held_order:,.0f} B",
        )
        out.print(mem)
    verdicts = Table(title="Targets")
    for column in ("figure", "measured", "target", "verdict"):
        verdicts.add_column(column)
    for t in targets:
        verdict = "-" if t.met is None else "[green]met[/]" if t.met else "[red]MISSED[/]"
        verdicts.add_row(t.figure, t.measured, t.target, verdict)
    out.print(verdicts)


def rounds_table(rounds: dict[str, Any]) -> Table:
    """(a) and (c) round by round; the tables below show the median round."""
    table = Table(title="(c)/(a) by round ((a) and (c) back to back; median round below)")
    for column in ("round", "(a) orders/s", "(c) orders/s", "(c)/(a)", "by CPU", "engine µs"):
        table.add_column(column, justify="right")
    table.add_column("CPU machine (a) / (c)", justify="right")
    for index, each in enumerate(rounds["each"], 1):
        engine = each["engine_thread_us_per_order"]
        table.add_row(
            str(index),
            f"{each['ceiling_orders_per_second']:,.0f}",
            f"{each['dispatcher_orders_per_second']:,.0f}",
            f"{each['ratio']:.0%}",
            f"{each['cpu_ratio']:.0%}",
            "-" if engine is None else f"{engine:.0f}",
            f"{each['machine_cpu_ceiling']:.2f} / {each['machine_cpu_dispatcher']:.2f}",
        )
    ratio, by_cpu = rounds["ratio"], rounds["cpu_ratio"]
    table.add_row(
        "median",
        f"{rounds['ceiling_orders_per_second']['median']:,.0f}",
        f"{rounds['dispatcher_orders_per_second']['median']:,.0f}",
        f"{ratio['median']:.0%} ({ratio['min']:.0%}-{ratio['max']:.0%})",
        f"{by_cpu['median']:.0%} ({by_cpu['min']:.0%}-{by_cpu['max']:.0%})",
        f"{rounds['engine_thread_us_per_order']['median']:.0f}",
        "",
    )
    return table


def machine_facts(sink: str) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "google-cloud-pubsub": package_version("google-cloud-pubsub"),
        "grpcio": package_version("grpcio"),
        "sink": sink,
    }
