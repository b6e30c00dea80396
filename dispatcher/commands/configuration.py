"""``dispatcher config``: show and validate configuration files before they are deployed."""

from __future__ import annotations

from pathlib import Path

import click
import yaml
from rich.table import Table

from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.output import console as make_console
from dispatcher.config import default_config_text
from dispatcher.operator import dashboards


@click.group("config")
def config_group() -> None:
    """Inspect and check configuration."""


@config_group.command("default")
def default_command() -> None:
    """Print the built-in configuration (a starting point for your own file)."""
    click.echo(default_config_text(), nl=False)


@config_group.command("validate")
@config_option
def validate_command(config_path: Path | None) -> None:
    """Check a configuration; exit 1 with the field and reason when it is invalid."""
    settings = settings_or_exit(config_path)
    table = Table(title=f"size classes ({settings.environment})")
    for column in ("class", "max size", "template", "orders/wf", "linger s", "pool", "max live"):
        table.add_column(column)
    for c in settings.classes:
        table.add_row(
            c.name,
            "∞" if c.max_size_bytes is None else f"{c.max_size_bytes:,}",
            c.template,
            str(c.max_orders_per_workflow),
            f"{c.max_linger_seconds:g}",
            c.node_pool + (" (spot)" if c.spot else ""),
            str(c.max_live_workflows),
        )
    make_console().print(table)
    click.echo("configuration is valid")


@config_group.command("show")
@config_option
def show_command(config_path: Path | None) -> None:
    """Print the effective configuration (file plus environment overrides) as YAML."""
    settings = settings_or_exit(config_path)
    click.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), nl=False)


@click.command("dashboard")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cloud-monitoring", "grafana"]),
    default="cloud-monitoring",
    show_default=True,
    help="A Config Connector MonitoringDashboard, or a Grafana dashboard's JSON model.",
)
def dashboard_command(fmt: str) -> None:
    """Print the operators' dashboard (the same panels for Cloud Monitoring and Grafana)."""
    click.echo(dashboards.render("grafana" if fmt == "grafana" else "cloud-monitoring"), nl=False)
