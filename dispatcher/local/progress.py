"""Showing a swarm's progress through the local stack, and its summary at the end.

Why its own module: one snapshot is drawn two ways, a rich Live table on a terminal and plain
lines (printed when something changed) in CI logs and pipes, where redrawn screens are noise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dispatcher.local.swarm import FAILED, LIVE, SUCCEEDED, Snapshot

POLL_SECONDS = 1.0


def _counts(snap: Snapshot) -> str:
    return f"published {snap.published}  dead-lettered {snap.dead_lettered}  held {snap.held}"


def _headline(snap: Snapshot) -> str:
    return f"[{snap.elapsed:6.1f}s] {_counts(snap)}"


def table(snap: Snapshot) -> Group:
    classes = Table(title="Workflows per class")
    for column in ("class", "orders in Workflows", "live", "succeeded", "failed"):
        classes.add_column(column, justify="left" if column == "class" else "right")
    for name, row in sorted(snap.classes.items()):
        counts = row.workflows
        classes.add_row(
            name, str(row.orders), str(counts[LIVE]), str(counts[SUCCEEDED]), str(counts[FAILED])
        )
    pools = Table(title="Node pools")
    for column in ("pool", "nodes", "pods running or pending"):
        pools.add_column(column, justify="left" if column == "pool" else "right")
    for pool, (nodes, pods) in snap.pools.items():
        pools.add_row(pool, str(nodes), str(pods))
    return Group(Text(_headline(snap)), classes, pools)


def plain(snap: Snapshot) -> str:
    parts = [
        f"{name} {row.orders} orders/{row.workflows[LIVE]} live/"
        f"{row.workflows[SUCCEEDED]} ok/{row.workflows[FAILED]} failed"
        for name, row in sorted(snap.classes.items())
    ]
    pods = " ".join(f"{p}={n}" for p, (_, n) in snap.pools.items() if n)
    return f"{_counts(snap)} | {'; '.join(parts) or 'no Workflows yet'} | pods {pods or '-'}"


def live_display(console: Console) -> bool:
    """A redrawn table only on a terminal and outside CI."""
    return console.is_terminal and os.environ.get("CI", "").lower() != "true"


def follow(
    sample: Callable[[], Snapshot],
    *,
    timeout: float,
    console: Console,
    interval: float = POLL_SECONDS,
) -> Snapshot:
    """Sample until the swarm is done or the deadline passes; show each sample."""
    deadline = time.monotonic() + timeout
    snap = sample()
    if live_display(console):
        with Live(table(snap), console=console, refresh_per_second=4) as screen:
            while not snap.done and time.monotonic() < deadline:
                time.sleep(interval)
                snap = sample()
                screen.update(table(snap))
        return snap
    last = ""
    while True:
        state = plain(snap)
        if state != last:  # the same state again: no new line
            console.print(f"[{snap.elapsed:6.1f}s] {state}", highlight=False, soft_wrap=True)
            last = state
        if snap.done or time.monotonic() >= deadline:
            return snap
        time.sleep(interval)
        snap = sample()


def summary(snap: Snapshot) -> Table:
    """orders -> Workflows -> Succeeded, per class, with the time it took."""
    result = Table(title=f"Swarm summary ({snap.elapsed:.1f}s from publish to the last Workflow)")
    for column in ("class", "orders", "Workflows", "Succeeded", "Failed"):
        result.add_column(column, justify="left" if column == "class" else "right")
    for name, row in sorted(snap.classes.items()):
        result.add_row(
            name,
            str(row.orders),
            str(sum(row.workflows.values())),
            str(row.workflows[SUCCEEDED]),
            str(row.workflows[FAILED]),
        )
    total_orders = sum(row.orders for row in snap.classes.values())
    total_wf = sum(sum(row.workflows.values()) for row in snap.classes.values())
    succeeded = sum(row.workflows[SUCCEEDED] for row in snap.classes.values())
    result.add_row(
        "all", str(total_orders), str(total_wf), str(succeeded), str(snap.failed), style="bold"
    )
    result.caption = f"{snap.published} published, {snap.dead_lettered} dead-lettered"
    return result
