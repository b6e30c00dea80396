"""``dispatcher plan``, ``example-orders`` and ``schema``: look before anything is created."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import BinaryIO

import click
import yaml
from rich.table import Table

from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.output import console as make_console
from dispatcher.commands.output import output_option, print_document
from dispatcher.core.order import order_json_schema
from dispatcher.operator.examples import example_orders
from dispatcher.operator.plan import Plan, plan_orders


@click.command("plan")
@click.argument("orders", type=click.File("rb"))
@config_option
@click.option(
    "--render",
    "render_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each Workflow manifest the dispatcher would create into this directory.",
)
@output_option
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as -o json.")
def plan_command(
    orders: BinaryIO,
    config_path: Path | None,
    render_dir: Path | None,
    output: str,
    as_json: bool,
) -> None:
    """Show what a swarm of orders (JSON lines; '-' for stdin) would become.

    Validates every line like the service does, classifies orders by input size, batches them
    as if the whole swarm arrived at once, and prints per-class tables and the rejected lines.
    Nothing is published and no cluster is contacted.
    """
    settings = settings_or_exit(config_path)
    started = time.perf_counter()
    plan = plan_orders(orders, settings)
    elapsed = time.perf_counter() - started
    if render_dir is not None:
        _render(plan, render_dir)
    if as_json or output != "table":
        print_document(plan.to_json(), "json" if as_json else output)
        return
    _print_tables(plan, elapsed, render_dir)


def _render(plan: Plan, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for workflow in plan.workflows:
        path = directory / f"{workflow.name}.yaml"
        path.write_text(
            yaml.safe_dump(workflow.body, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )


def _print_tables(plan: Plan, elapsed: float, render_dir: Path | None) -> None:
    console = make_console()
    table = Table(title="Workflows per size class")
    for column in ("class", "orders", "workflows", "orders/workflow", "input", "node pool"):
        table.add_column(column, justify="right" if column != "class" else "left")
    table.add_column("spot")
    for c in plan.classes.values():
        table.add_row(
            c.name,
            f"{c.orders:,}",
            f"{c.workflows:,}",
            f"{c.orders_per_workflow:.1f}",
            _human_bytes(c.input_bytes),
            c.node_pool,
            "spot" if c.spot else "on-demand",
        )
    console.print(table)
    console.print(
        f"{plan.lines_read:,} lines: {plan.orders:,} orders in {len(plan.workflows):,} "
        f"Workflows, {len(plan.rejected):,} rejected, {plan.duplicates:,} duplicates "
        f"(planned in {elapsed:.2f} s)"
    )
    if plan.rejected:
        rejected = Table(title="Rejected lines (would be dead-lettered)")
        for column in ("line", "reason", "order id", "detail"):
            rejected.add_column(column)
        for r in plan.rejected[:50]:
            rejected.add_row(str(r.line), r.reason, r.order_id or "", r.detail)
        console.print(rejected)
        if len(plan.rejected) > 50:
            console.print(f"... and {len(plan.rejected) - 50:,} more (use -o json for all)")
    if render_dir is not None:
        console.print(f"wrote {len(plan.workflows):,} manifests to {render_dir}")


def _human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"


@click.command("example-orders")
@click.argument("count", type=click.IntRange(min=0))
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option(
    "--invalid-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of malformed lines.",
)
@click.option(
    "--duplicate-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of repeated orders.",
)
def example_orders_command(
    count: int, seed: int, invalid_share: float, duplicate_share: float
) -> None:
    """Print COUNT realistic orders as JSON lines (heavy-tailed input sizes)."""
    out = sys.stdout
    for line in example_orders(
        count, seed=seed, invalid_share=invalid_share, duplicate_share=duplicate_share
    ):
        out.write(line)
        out.write("\n")


@click.command("schema")
def schema_command() -> None:
    """Print the order message JSON Schema (v1), generated from the model."""
    click.echo(json.dumps(order_json_schema(), indent=2, ensure_ascii=False))
