"""The swarm run's table, and its figures against the four targets of issue 12.

Why apart: docs/performance.md shows this same table, so it is drawn from result.json alone
(a saved run can be shown again: `python -m bench.swarm_report bench/runs/<name>/result.json`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROWS = (
    ("orders", "orders (valid)"),
    ("workflows", "Workflows"),
    ("makespan_s", "makespan (s)"),
    ("latency_p50_s", "latency p50 (s)"),
    ("latency_p99_s", "latency p99 (s)"),
    ("workflows_per_min", "Workflows/min"),
    ("orders_per_min", "orders/min"),
    ("peak_workflow_objects", "peak Workflow objects"),
    ("etcd_bytes_peak", "etcd bytes, peak"),
    ("preemptions", "preemptions (attempts rerun)"),
    ("preempted_orders_retried", "orders retried after one"),
    ("back_to_zero_s", "back to zero (s)"),
    ("cost_per_order_usd", "cost per order (USD)"),
)


def _show(value: Any, *, dollars: bool = False) -> str:
    if value is None:
        return "–"
    if dollars:
        return f"{value:.6f}" if value < 0.01 else f"{value:,.4f}"
    if isinstance(value, float) and value.is_integer() and value > 1000:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pools(row: dict[str, Any], key: str) -> str:
    dollars = key == "cost_usd"
    return (
        ", ".join(f"{pool} {_show(v, dollars=dollars)}" for pool, v in row.get(key, {}).items())
        or "–"
    )


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, wanted, met) for each target; met None when it cannot be judged."""
    naive = result.get("naive")
    found: list[tuple[str, str, str, bool | None]] = []
    if naive:
        ratio = result["cost_per_order_usd"] / naive["cost_per_order_usd"]
        found.append(("cost per order", f"{1 - ratio:.0%} lower", ">= 70 % lower", ratio <= 0.3))
        speed = result["orders_per_min"] / max(naive["orders_per_min"], 1e-9)
        found.append(("orders/min vs naive", f"{speed:.1f}x", ">= 25x", speed >= 25))
    zero = result["back_to_zero_s"]
    delay = result["run"].get("consolidate_after")
    if delay is None:
        found.append(("pools back to zero", "fixed nodes", "consolidation delay + 120 s", None))
    elif zero is None or (naive and naive.get("back_to_zero_s") is None):
        found.append(("pools back to zero", "not within --zero-timeout", f"{delay} + 120 s", False))
    else:
        bound = float(str(delay).rstrip("s")) + 120
        worst = max(zero, (naive or {}).get("back_to_zero_s") or 0)
        found.append(
            ("pools back to zero", f"{worst:.0f} s (worst phase)", f"<= {bound:.0f} s",
             worst <= bound)
        )  # fmt: skip
    check = result["check"]
    sound = check["lost"] == 0 and check["duplicated"] == 0
    found.append(
        ("no loss / duplicate", f"lost {check['lost']}, duplicated {check['duplicated']}",
         "0 and 0", sound)
    )  # fmt: skip
    return found


def table(result: dict[str, Any]) -> Table:
    naive = result.get("naive")
    out = Table(title=f"Swarm run {result['run']['name']}")
    out.add_column("figure")
    out.add_column("dispatcher", justify="right")
    if naive:
        out.add_column(f"naive ({naive['orders']} orders)", justify="right")
    for key, label in ROWS:
        dollars = key.endswith("_usd")
        out.add_row(
            label,
            _show(result[key], dollars=dollars),
            *([_show(naive[key], dollars=dollars)] if naive else []),
        )
    for key, label in (("node_seconds", "node-seconds"), ("cost_usd", "cost (USD)")):
        out.add_row(label, _pools(result, key), *([_pools(naive, key)] if naive else []))
    for target, measured, wanted, met in targets(result):
        mark = {True: "met", False: "NOT met", None: "see notes"}[met]
        out.add_row(f"target: {target}", f"{measured} ({mark})", *([wanted] if naive else []))
    return out


if __name__ == "__main__":
    Console(width=160).print(table(json.loads(Path(sys.argv[1]).read_text())))
