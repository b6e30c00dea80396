"""``dispatcher dead-letter inspect|replay``: see what the dispatcher gave up on, and retry it.

Dead letters are read from a subscription on the dead-letter topic that belongs to operators
(the configuration names only the topic; the deployed one is ``<topic>-inspect``). Both commands
hold what they pull until they are done (see :mod:`dispatcher.adapters.leased_pull`):
inspecting gives everything back, replaying acks a dead letter only after its original message
was published again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from dispatcher.adapters.leased_pull import LeasedPull
from dispatcher.adapters.pubsub_clients import subscriber_client
from dispatcher.adapters.pubsub_errors import COMMAND_ERRORS
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.deadletter_options import (  # noqa: F401 - re-exported names
    INSPECT_EXIT_CODES,
    ORDERS_TOPIC_ENV,
    PUBLISH_TIMEOUT_SECONDS,
    SUBSCRIPTION_ENV,
    idle_timeout_option,
    max_scan_option,
    project_option,
    reason_option,
    subscription_option,
)
from dispatcher.commands.deadletter_replay import replay_command
from dispatcher.commands.output import ago, clip, console, output_option, print_document
from dispatcher.commands.progress import Meter
from dispatcher.commands.pubsub_access import Scan, dead_letter_subscription, explain
from dispatcher.core.replay import DeadLetterRecord, Selection, replay_fails_again
from dispatcher.core.sweep import Sweep
from dispatcher.logging import get_logger

log = get_logger()


@click.group("dead-letter")
def dead_letter_group() -> None:
    """Inspect and replay orders the dispatcher dead-lettered.

    Every order the dispatcher gives up on is published to the dead-letter topic with the
    original data and attributes plus dlq_reason, dlq_detail, dlq_stage, original_message_id,
    original_publish_time and dispatcher_version. Read them through a subscription of your own
    on that topic (without a dead-letter policy of its own).
    """


@dead_letter_group.command("inspect", epilog=INSPECT_EXIT_CODES)
@subscription_option
@project_option
@config_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Show at most this many dead letters.",
)
@reason_option
@idle_timeout_option
@max_scan_option
@output_option
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as -o json.")
def inspect_command(
    *,
    subscription: str | None,
    project: str | None,
    config_path: Path | None,
    limit: int,
    reasons: tuple[str, ...],
    idle_timeout: float,
    max_scan: int | None,
    output: str,
    as_json: bool,
) -> None:
    """Show dead letters without removing them: id, order, reason, stage, age, detail.

    Messages are pulled, held while the table is built and then given back (ack deadline 0),
    so nothing is lost and other readers see them again at once. Counts per reason cover
    every message looked at; "replay helps" says whether the reason can go away without a new
    message (a fixed template or configuration) or will recur on replay (a bad message).
    """
    settings = settings_or_exit(config_path)
    path = dead_letter_subscription(subscription, settings=settings, project=project)
    sweep = Sweep(
        selection=Selection(reasons=frozenset(reasons)),
        clock=time.monotonic,
        idle_timeout=idle_timeout,
        limit=limit,
        max_scan=max_scan,
    )
    shown: list[DeadLetterRecord] = []
    try:
        with (
            subscriber_client() as subscriber,
            LeasedPull(subscriber, path) as queue,
            Meter("reading dead letters", total=limit) as meter,
        ):
            for batch in Scan(queue=queue, sweep=sweep).batches():
                shown.extend(batch)
                meter.update(done=len(shown), looked_at=sweep.looked_at)
    except COMMAND_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc
    now = datetime.now(UTC)
    counts = sweep.reason_counts()
    if as_json or output != "table":
        document = {
            "subscription": path,
            "scanned": sweep.looked_at,
            "stopped": sweep.stopped,
            "counts": dict(counts),
            "messages": [record.to_json(now) for record in shown],
        }
        print_document(document, "json" if as_json else output)
        return
    _print_tables(path=path, shown=shown, counts=counts, sweep=sweep, now=now)


def _print_tables(
    *,
    path: str,
    shown: list[DeadLetterRecord],
    counts: list[tuple[str, int]],
    sweep: Sweep,
    now: datetime,
) -> None:
    out = console()
    table = Table(title=f"Dead letters on {path}")
    for column in ("message id", "order id", "reason", "stage", "age"):
        table.add_column(column, overflow="fold", no_wrap=column in ("reason", "age"))
    table.add_column("detail", overflow="fold", ratio=1)
    oldest_first = sorted(shown, key=lambda r: -(r.age_seconds(now) or 0.0))
    for record in oldest_first:
        table.add_row(
            record.message_id,
            record.order_id or "",
            record.reason,
            record.stage,
            ago(record.age_seconds(now)),
            clip(record.detail, 120),
        )
    out.print(table)
    summary = Table(title="Dead letters per reason")
    for column in ("reason", "count", "replay helps"):
        summary.add_column(column, justify="right" if column == "count" else "left")
    for reason, count in counts:
        summary.add_row(reason, f"{count:,}", "no" if replay_fails_again(reason) else "maybe")
    out.print(summary)
    out.print(f"looked at {sweep.looked_at:,} dead letters ({sweep.stopped}); all were given back")


dead_letter_group.add_command(replay_command)
