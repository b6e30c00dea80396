"""The single ``dispatcher`` command operators use: run, plan, dead letters, limits."""

from __future__ import annotations

import click

from dispatcher import __version__
from dispatcher.commands.configuration import config_group, dashboard_command
from dispatcher.commands.deadletters import dead_letter_group
from dispatcher.commands.limits import limits_group
from dispatcher.commands.local import local_group
from dispatcher.commands.planning import example_orders_command, plan_command, schema_command
from dispatcher.commands.publishing import publish_command
from dispatcher.commands.report import report_command
from dispatcher.commands.run import run_command
from dispatcher.commands.simulating import simulate_command
from dispatcher.commands.status import status_command
from dispatcher.logging import configure

EXIT_CODES = """\b
Exit codes (every command):
  0    done
  1    failed: bad configuration, a server that cannot be reached or refused, a
       swarm that did not finish (the message says which and why)
  2    usage: an unknown option or a bad value
  3    publish: some lines were invalid (reported, not sent)
  4    publish: a publish failed (what was sent is reported)
  130  interrupted (Ctrl-C); replay acks only what it published

Read commands take -o table|json|yaml (a table on a terminal, full width when
piped); commands that change something take --dry-run."""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, prog_name="dispatcher")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    envvar="DISPATCHER_LOG_FORMAT",
    show_default=True,
    help="JSON (Cloud Logging) or console; auto picks console on a terminal.",
)
@click.option("--log-level", default="info", envvar="DISPATCHER_LOG_LEVEL", show_default=True)
def cli(log_format: str, log_level: str) -> None:
    """burst-dispatcher: turn swarms of Pub/Sub orders into batched Argo Workflows.

    Orders are validated, classified by input size, batched per class and admitted under a
    global creation rate and per-class caps on live Workflows; the backlog waits in Pub/Sub.
    """
    configure(log_format, log_level)  # type: ignore[arg-type]


cli.add_command(run_command)
cli.add_command(plan_command)
cli.add_command(example_orders_command)
cli.add_command(schema_command)
cli.add_command(publish_command)
cli.add_command(config_group)
cli.add_command(dead_letter_group)
cli.add_command(report_command)
cli.add_command(limits_group)
cli.add_command(dashboard_command)
cli.add_command(status_command)
cli.add_command(local_group)
cli.add_command(simulate_command)


def main() -> None:
    cli()
