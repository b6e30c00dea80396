"""``dispatcher dead-letter inspect|replay``: see what the dispatcher gave up on, and retry it.

Dead letters are read from a subscription on the dead-letter topic that belongs to operators
(the configuration names only the topic; the deployed one is ``<topic>-inspect``). Both commands
hold what they pull until they are done (see :mod:`dispatcher.adapters.leased_pull`):
inspecting gives everything back, replaying acks a dead letter only after its original message
was published again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
from google.auth.exceptions import GoogleAuthError
from google.cloud import pubsub_v1
from rich.table import Table

from dispatcher.adapters.leased_pull import LeasedPull
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.output import ago, clip, console, print_json
from dispatcher.commands.pubsub_access import (
    INSPECT_SUFFIX,
    Scan,
    dead_letter_subscription,
    explain,
    orders_topic,
    progress_bar,
    qualify,
)
from dispatcher.errors import DispatchError
from dispatcher.logging import get_logger
from dispatcher.replay import (
    REASON_CODES,
    DeadLetterRecord,
    Selection,
    reason_counts,
    replay_attributes,
    replay_fails_again,
)

SUBSCRIPTION_ENV = "DISPATCHER_DEAD_LETTER_SUBSCRIPTION"
ORDERS_TOPIC_ENV = "DISPATCHER_ORDERS_TOPIC"
PUBLISH_TIMEOUT_SECONDS = 60.0

log = get_logger()

subscription_option = click.option(
    "--subscription",
    default=None,
    envvar=SUBSCRIPTION_ENV,
    help=(
        f"Subscription on the dead-letter topic (name or full path; ${SUBSCRIPTION_ENV}; "
        f"default: <pubsub.dead_letter_topic>{INSPECT_SUFFIX}, as deployed)."
    ),
)
project_option = click.option(
    "--project",
    default=None,
    help="Google Cloud project for short names (default: pubsub.project of the configuration).",
)
reason_option = click.option(
    "--reason",
    "reasons",
    multiple=True,
    type=click.Choice(REASON_CODES),
    metavar="CODE",
    help="Only dead letters with this dlq_reason, e.g. template_missing (repeatable).",
)
max_scan_option = click.option(
    "--max-scan",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Look at no more than this many dead letters.",
)


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
    except (DispatchError, GoogleAuthError) as exc:
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


@dataclass
class _Tally:
    replayed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, bucket: dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1


@dead_letter_group.command("replay")
@subscription_option
@click.option(
    "--to-topic",
    default=None,
    envvar=ORDERS_TOPIC_ENV,
    help=(
        f"The orders topic to publish to (name or full path; ${ORDERS_TOPIC_ENV}; default: "
        "the topic of the configuration's pubsub.subscription, looked up in Pub/Sub)."
    ),
)
@project_option
@config_option
@reason_option
@click.option("--order-id", "order_ids", multiple=True, help="Only this order (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most this many.")
@max_scan_option
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
def replay_command(
    subscription: str | None,
    to_topic: str | None,
    project: str | None,
    config_path: Path | None,
    reasons: tuple[str, ...],
    order_ids: tuple[str, ...],
    limit: int | None,
    max_scan: int,
    dry_run: bool,
) -> None:
    """Publish dead letters' original messages to the orders topic again, then ack them.

    The original data and attributes are sent; dlq_*, original_message_id,
    original_publish_time, dispatcher_version and Pub/Sub's CloudPubSubDeadLetterSource*
    attributes are removed and replayed_from=<dead letter's message id> is added. A dead letter
    is acked only after its message was published; dead letters that do not match --reason /
    --order-id are given back untouched. Stops at the first failed publish. Replaying a reason
    caused by the message itself (invalid_json, schema, ...) only dead-letters it again.
    """
    settings = settings_or_exit(config_path)
    project_id = project or settings.pubsub.project
    path = dead_letter_subscription(subscription, settings=settings, project=project)
    selection = Selection(reasons=frozenset(reasons), order_ids=frozenset(order_ids))
    chosen: list[DeadLetterRecord] = []
    tally = _Tally()
    try:
        publisher = None if dry_run else publisher_client()
    except GoogleAuthError as exc:
        raise click.ClickException(explain(exc)) from exc
    try:
        with subscriber_client() as subscriber:
            topic = (
                qualify(to_topic, kind="topics", project=project_id)
                if to_topic
                else orders_topic(subscriber, settings=settings, project=project)
            )
            with LeasedPull(subscriber, path) as queue:
                scan = Scan(queue=queue, selection=selection, limit=limit, max_scan=max_scan)
                progress, task = progress_bar("replaying" if publisher else "reading", limit)
                with progress:
                    for batch in scan.batches():
                        chosen.extend(batch)
                        if publisher is not None:
                            done = _republish(publisher, topic, batch, tally)
                            queue.ack(done)
                        progress.update(task, completed=len(chosen))
                        if tally.errors:
                            scan.stopped = "a publish failed"
                            break
    except (DispatchError, GoogleAuthError) as exc:
        raise click.ClickException(explain(exc)) from exc
    finally:
        if publisher is not None:
            publisher.stop()
    _print_replay(
        chosen=chosen, scan=scan, tally=tally, topic=topic, dry_run=dry_run, subscription=path
    )
    if tally.errors:
        raise click.ClickException(f"{len(tally.errors)} publish(es) failed: {tally.errors[0]}")


def _republish(
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    batch: list[DeadLetterRecord],
    tally: _Tally,
) -> list[str]:
    """Publish each original message; the dead-letter ids that are now safe to ack."""
    futures = [
        (
            record,
            publisher.publish(
                topic,
                record.data,
                **replay_attributes(record.attributes, dead_letter_id=record.message_id),
            ),
        )
        for record in batch
    ]
    done: list[str] = []
    for record, future in futures:
        try:
            new_id = future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the dead letter
            tally.add(tally.failed, record.reason)
            tally.errors.append(f"{record.message_id}: {exc}")
            continue
        done.append(record.message_id)
        tally.add(tally.replayed, record.reason)
        log.info(
            "dead_letter_replayed",
            order_id=record.order_id,
            message_id=record.message_id,
            new_message_id=new_id,
            reason=record.reason,
        )
    return done


def _print_replay(
    *,
    chosen: list[DeadLetterRecord],
    scan: Scan,
    tally: _Tally,
    topic: str,
    dry_run: bool,
    subscription: str,
) -> None:
    out = console()
    if dry_run:
        table = Table(title=f"Would replay to {topic} (dry run: nothing published or acked)")
        for column in ("message id", "order id", "reason", "attributes sent"):
            table.add_column(column)
        for record in chosen[:50]:
            sent = replay_attributes(record.attributes, dead_letter_id=record.message_id)
            table.add_row(
                record.message_id,
                record.order_id or "",
                record.reason,
                clip(", ".join(f"{k}={v}" for k, v in sorted(sent.items())), 100),
            )
        out.print(table)
        if len(chosen) > 50:
            out.print(f"... and {len(chosen) - 50:,} more")
    selected = reason_counts(chosen)
    summary = Table(title=f"Replay from {subscription}")
    for column in ("reason", "selected", "replayed", "failed", "note"):
        summary.add_column(column, justify="left" if column in ("reason", "note") else "right")
    for reason, count in selected:
        note = (
            "the message itself was rejected: expect it back" if replay_fails_again(reason) else ""
        )
        summary.add_row(
            reason,
            f"{count:,}",
            "-" if dry_run else f"{tally.replayed.get(reason, 0):,}",
            "-" if dry_run else f"{tally.failed.get(reason, 0):,}",
            note,
        )
    out.print(summary)
    passed = len(scan.scanned) - len(chosen)
    verb = "would replay" if dry_run else "replayed"
    count = len(chosen) if dry_run else sum(tally.replayed.values())
    out.print(
        f"{verb} {count:,} of {len(scan.scanned):,} dead letters looked at ({scan.stopped}); "
        f"{passed:,} not selected and given back"
    )
