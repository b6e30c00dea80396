"""``dispatcher local up | status | down``: the whole job on this machine, in one command.

Why a command group: a newcomer should see orders on Pub/Sub become Workflows that Argo runs
on size-matched pools without a GCP project. The work is in dispatcher.local; this module turns
it into options, progress lines and exit codes (non-zero when a swarm does not finish well).
"""

from __future__ import annotations

import random
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from dispatcher.commands.output import console as make_console
from dispatcher.commands.output import output_option, print_document

# dispatcher.local is imported inside the commands: it loads the Kubernetes and Pub/Sub clients,
# which every other command would otherwise pay for at start.


@click.group("local")
def local_group() -> None:
    """Run the dev environment locally: control plane, Argo, Pub/Sub emulator, dispatcher.

    State and logs live in ~/.cache/burst-dispatcher/local (BURST_LOCAL_STATE_DIR overrides);
    nothing is shared with the test cluster. See docs/local.md.
    """


@local_group.command("up")
@click.option(
    "--orders",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="Size of the example swarm to publish (0: start the stack only).",
)
@click.option("--seed", type=int, default=None, help="Seed of the swarm (default: a new one).")
@click.option(
    "--invalid-share",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Share of malformed orders (they end on the dead-letter topic).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=900,
    show_default=True,
    help="Seconds to wait for the swarm to finish.",
)
@click.option(
    "--autoscaling",
    is_flag=True,
    help="No fixed nodes: Karpenter scales the dev pools from zero and back (docs/local.md).",
)
@click.option(
    "--economics",
    "economics_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Economics profile: step run time per input size, spot preemption rate "
    "(default with --autoscaling: dispatcher/local/economics.yaml).",
)
@click.option("--no-economics", is_flag=True, help="With --autoscaling: pods end in 0.5 s.")
@click.option(
    "--environment",
    type=click.Choice(["dev", "prod"]),
    default="dev",
    show_default=True,
    help="Whose overlays to stand up (prod: the prod pools, limits and class topics).",
)
def up_command(
    orders: int,
    seed: int | None,
    invalid_share: float,
    timeout: float,
    *,
    autoscaling: bool,
    economics_file: Path | None,
    no_economics: bool,
    environment: str,
) -> None:
    """Start (or reuse) the local stack, publish a swarm and follow it until it is done.

    The first run builds the servers when they are missing (about 16 min for the control plane,
    2 min for the emulator). Running it again reuses what runs and re-applies the overlay.
    """
    from dispatcher.local import economics, progress, stack, swarm

    if economics_file is None and autoscaling and not no_economics:
        economics_file = economics.DEFAULT_FILE

    started = time.monotonic()

    def say(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {message}", err=True)

    try:
        info = stack.up(
            say, autoscaling=autoscaling, economics=economics_file, environment=environment
        )
    except (RuntimeError, TimeoutError, AssertionError) as exc:
        raise click.ClickException(f"local up failed: {exc}") from exc
    say(f"stack up in {time.monotonic() - started:.1f}s; `dispatcher local status` shows it")
    if orders == 0:
        return
    seed = seed if seed is not None else random.randrange(1, 10**9)  # noqa: S311 - fresh ids
    console = make_console()
    with swarm.api_client(info) as api:
        observer = swarm.Observer(info, api)
        published = swarm.publish(info, count=orders, seed=seed, invalid_share=invalid_share)
        say(f"published {published.published} orders (seed {seed}) to {info.orders_topic}")
        final = progress.follow(
            lambda: observer.sample(published), timeout=timeout, console=console
        )
    console.print(progress.summary(final))
    if not final.done:
        raise click.ClickException(f"the swarm did not finish within {timeout:.0f}s")
    if final.failed:
        raise click.ClickException(f"{final.failed} Workflows failed")


@local_group.command("status")
@output_option
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as -o json.")
def status_command(output: str, as_json: bool) -> None:
    """What runs (pids, endpoints, logs) and the export lines to point other commands at it."""
    from dispatcher.local import stack

    info, running, healthy = stack.status()
    if as_json or output != "table":
        document = {
            "stack": None if info is None else info.__dict__,
            "processes": {d.name: d.pid for d in running},
            "cluster_healthy": healthy,
        }
        print_document(document, "json" if as_json else output)
    elif info is None:
        click.echo("no local stack (dispatcher local up starts one)")
    else:
        click.echo(f"cluster      {info.server} ({'healthy' if healthy else 'NOT healthy'})")
        click.echo(f"emulator     {info.emulator_host}   orders topic {info.orders_topic}")
        click.echo(f"dispatcher   http://127.0.0.1:{info.ops_port}/metrics")
        for daemon in running:
            click.echo(f"{daemon.name:<12} pid {daemon.pid:<8} log {daemon.log}")
        click.echo(f"cluster logs {info.state}/cluster/logs")
        click.echo("# point dispatcher commands at it:")
        for key, value in info.exports().items():
            click.echo(f"export {key}={shlex.quote(value)}")
    if info is None or not healthy or len(running) < len(stack.DAEMONS):
        sys.exit(1)


@local_group.command("publish")
@click.argument("orders", type=click.File("r"))
def publish_command(orders: TextIO) -> None:
    """Publish your own orders (JSON lines; '-' for stdin) to the local stack's orders topic."""
    from dispatcher.local import stack, swarm

    info = stack.load()
    if info is None:
        raise click.ClickException("no local stack (dispatcher local up starts one)")
    lines = [line.rstrip("\n") for line in orders if line.strip()]
    swarm.publish_lines(info, lines)
    click.echo(f"published {len(lines)} orders to {info.orders_topic}")


@local_group.command("down")
def down_command() -> None:
    """Stop everything the local stack started and remove its state."""
    from dispatcher.local import stack

    stack.down(lambda message: click.echo(message, err=True))
    click.echo("local stack down")
