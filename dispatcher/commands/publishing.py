"""``dispatcher publish``: send a file of orders the way upstream services should, checked first.

Why: teams trying the dispatcher, replaying a swarm or loading a test environment need one
safe way to publish many orders; this command refuses (and reports) every line the service
would dead-letter, paces the rest and says with its exit code what happened.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO

import click
from rich.table import Table

from dispatcher.adapters.pubsub_clients import subscriber_client
from dispatcher.adapters.pubsub_errors import COMMAND_ERRORS
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.deadletter_options import ORDERS_TOPIC_ENV, project_option
from dispatcher.commands.output import clip, console, output_option, print_document
from dispatcher.commands.progress import Meter
from dispatcher.commands.publish_run import Tally, publish_lines
from dispatcher.commands.pubsub_access import explain, orders_topic, qualify
from dispatcher.config import Settings
from dispatcher.core.ratelimit import TokenBucket
from dispatcher.publish import OrderCheck, OrderPublisher

EXIT_INVALID_LINES = 3
EXIT_PUBLISH_FAILED = 4
SHOWN_REFUSALS = 50


@click.command("publish")
@click.argument("orders", type=click.File("rb"))
@click.option(
    "--topic",
    default=None,
    envvar=ORDERS_TOPIC_ENV,
    help=(
        f"Orders topic (name or full path; ${ORDERS_TOPIC_ENV}; default: the topic of the "
        "configuration's pubsub.subscription, looked up in Pub/Sub)."
    ),
)
@project_option
@config_option
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Send at most this many orders per second (token bucket; default: as fast as it goes).",
)
@click.option("--dry-run", is_flag=True, help="Check and count every line; send nothing.")
@output_option
def publish_command(
    orders: BinaryIO,
    topic: str | None,
    project: str | None,
    config_path: Path | None,
    rate: float | None,
    dry_run: bool,
    output: str,
) -> None:
    """Check ORDERS (JSON lines, one order per line; '-' for stdin) and publish the valid ones.

    Every line is judged by the service's own intake under the configuration (--config):
    a line it would dead-letter is reported with its line number, reason code and detail and
    is never sent. Valid lines are sent byte for byte with an order_id attribute, in batches,
    at most --rate per second; the first failed publish stops the reading. Blank lines are
    skipped. With PUBSUB_EMULATOR_HOST set, the emulator is used.

    \b
    Exit codes:
      0  every line was valid and every order published (or, with --dry-run, valid)
      1  nothing was sent: bad configuration, no credentials, topic not found by lookup
      2  bad usage (unknown option, unreadable file)
      3  some lines were invalid and not sent; every valid order was published
      4  a publish failed or was not confirmed; reading stopped there (see the summary)
    """
    settings = settings_or_exit(config_path)
    check = OrderCheck(settings)
    path = _topic(topic, project=project, settings=settings, dry_run=dry_run)
    total = _count_lines(orders)
    bucket = None
    if rate is not None:
        bucket = TokenBucket(rate=rate, burst=max(1, int(rate / 10)), clock=time.monotonic)
    try:
        if dry_run or path is None:
            with Meter("checking", total=total) as progress:
                tally = publish_lines(
                    orders, check=check, publisher=None, bucket=None, meter=progress
                )
        else:
            with (
                OrderPublisher(path, settings=settings) as publisher,
                Meter("publishing", total=total) as progress,
            ):
                tally = publish_lines(
                    orders, check=check, publisher=publisher, bucket=bucket, meter=progress
                )
    except COMMAND_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc
    if output != "table":
        print_document(tally.to_json(topic=path, dry_run=dry_run), output)
    else:
        _print_tables(tally, topic=path, dry_run=dry_run)
    if tally.failed or tally.sent > tally.published:
        click.get_current_context().exit(EXIT_PUBLISH_FAILED)
    if tally.refused:
        click.get_current_context().exit(EXIT_INVALID_LINES)


def _topic(
    topic: str | None, *, project: str | None, settings: Settings, dry_run: bool
) -> str | None:
    project_id = project or settings.pubsub.project
    if topic:
        return qualify(topic, kind="topics", project=project_id)
    if dry_run:
        return None  # a dry run needs no Pub/Sub at all
    try:
        with subscriber_client() as subscriber:
            return orders_topic(subscriber, settings=settings, project=project, option="--topic")
    except COMMAND_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc


def _count_lines(stream: BinaryIO) -> int | None:
    """Lines in a regular file (for the ETA); None for a pipe, which can be read only once."""
    if not stream.seekable():
        return None
    count = sum(1 for _ in stream)
    stream.seek(0)
    return count


def _print_tables(tally: Tally, *, topic: str | None, dry_run: bool) -> None:
    out = console()
    if tally.refused:
        table = Table(title="Invalid lines (not sent; the dispatcher would dead-letter them)")
        for column in ("line", "reason", "stage", "order id", "detail"):
            table.add_column(column, justify="right" if column == "line" else "left")
        for r in tally.refused[:SHOWN_REFUSALS]:
            table.add_row(str(r.line), r.reason, r.stage, r.order_id or "", clip(r.detail, 160))
        out.print(table)
        if len(tally.refused) > SHOWN_REFUSALS:
            out.print(f"... and {len(tally.refused) - SHOWN_REFUSALS:,} more (-o json for all)")
    summary = Table(title="Dry run: nothing sent" if dry_run else f"Published to {topic}")
    for column in ("lines", "valid", "invalid", "repeated ids", "published", "failed", "orders/s"):
        summary.add_column(column, justify="right")
    rate = (tally.published if not dry_run else tally.orders) / max(tally.seconds, 1e-9)
    summary.add_row(
        f"{tally.lines:,}",
        f"{tally.orders:,}",
        f"{len(tally.refused):,}",
        f"{tally.repeated:,}",
        "-" if dry_run else f"{tally.published:,}",
        "-" if dry_run else f"{tally.sent - tally.published:,}",
        f"{rate:,.0f}",
    )
    out.print(summary)
    classes = ", ".join(f"{name} {count:,}" for name, count in tally.classes.most_common())
    out.print(f"valid orders per class: {classes or 'none'}; {tally.stopped}")
    for error in tally.errors:
        out.print(f"publish error: {error}")
