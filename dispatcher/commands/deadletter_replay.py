"""``dispatcher dead-letter replay``: publish dead letters again once their cause is fixed.

A dead letter is acked only after its original message was published again, so an
interrupted replay loses nothing (see :mod:`dispatcher.adapters.leased_pull`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dispatcher.adapters.leased_pull import LeasedPull
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.adapters.pubsub_errors import COMMAND_ERRORS, CREDENTIAL_ERRORS
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.deadletter_options import (
    ORDERS_TOPIC_ENV,
    PUBLISH_TIMEOUT_SECONDS,
    max_scan_option,
    project_option,
    reason_option,
    subscription_option,
)
from dispatcher.commands.output import clip, console
from dispatcher.commands.pubsub_access import (
    Scan,
    dead_letter_subscription,
    explain,
    orders_topic,
    progress_bar,
    qualify,
)
from dispatcher.core.replay import (
    DeadLetterRecord,
    Selection,
    reason_counts,
    replay_attributes,
    replay_fails_again,
)
from dispatcher.logging import get_logger

log = get_logger()


@dataclass
class _Tally:
    replayed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, bucket: dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1


@click.command("replay")
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
    except CREDENTIAL_ERRORS as exc:
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
    except COMMAND_ERRORS as exc:
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
    publisher: Any,
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
