"""``dispatcher dead-letter inspect|replay``: see what the dispatcher gave up on, and retry it.

Dead letters are read from a subscription on the dead-letter topic that belongs to operators
(the configuration names only the topic; the deployed one is ``<topic>-inspect``). Both commands
hold what they pull until they are done (see :mod:`dispatcher.adapters.leased_pull`):
inspecting gives everything back, replaying acks a dead letter only after its original message
was published again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from dispatcher.adapters.leased_pull import LeasedPull
from dispatcher.adapters.pubsub_clients import subscriber_client
from dispatcher.adapters.pubsub_errors import COMMAND_ERRORS
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.deadletter_options import (  # noqa: F401 - re-exported names
    ORDERS_TOPIC_ENV,
    PUBLISH_TIMEOUT_SECONDS,
    SUBSCRIPTION_ENV,
    max_scan_option,
    project_option,
    reason_option,
    subscription_option,
)
from dispatcher.commands.deadletter_replay import replay_command
from dispatcher.commands.output import ago, clip, console, print_json
from dispatcher.commands.pubsub_access import (
    Scan,
    dead_letter_subscription,
    explain,
    progress_bar,
)
from dispatcher.core.replay import (
    DeadLetterRecord,
    Selection,
    reason_counts,
    replay_fails_again,
)
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


@dead_letter_group.command("inspect")
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
@max_scan_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def inspect_command(
    subscription: str | None,
    project: str | None,
    config_path: Path | None,
    limit: int,
    reasons: tuple[str, ...],
    max_scan: int,
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
    selection = Selection(reasons=frozenset(reasons))
    shown: list[DeadLetterRecord] = []
    try:
        with subscriber_client() as subscriber, LeasedPull(subscriber, path) as queue:
            scan = Scan(queue=queue, selection=selection, limit=limit, max_scan=max_scan)
            progress, task = progress_bar("reading dead letters", limit)
            with progress:
                for batch in scan.batches():
                    shown.extend(batch)
                    progress.update(task, completed=len(shown))
    except COMMAND_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc
    now = datetime.now(UTC)
    counts = reason_counts(scan.scanned)
    if as_json:
        print_json(
            {
                "subscription": path,
                "scanned": len(scan.scanned),
                "stopped": scan.stopped,
                "counts": dict(counts),
                "messages": [record.to_json(now) for record in shown],
            }
        )
        return
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
    out.print(f"looked at {len(scan.scanned):,} dead letters ({scan.stopped}); all were given back")


dead_letter_group.add_command(replay_command)
