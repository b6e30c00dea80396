"""``dispatcher dead-letter replay``: publish dead letters again once their cause is fixed.

After an outage there may be 100,000 dead letters, so a replay streams: it pulls a batch,
publishes the chosen ones, acks each dead letter only after its copy was published, and goes on
until the subscription stays empty. Dead letters it does not choose stay leased (never pulled
twice in one run) and are given back when it ends. An interrupted or killed replay loses
nothing: what was not acked comes back when its lease lapses, and at most the batch in flight
is published twice, which the dispatcher's dedupe by order id makes harmless.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from dispatcher.adapters.leased_pull import LEASE_SECONDS, LeasedPull
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.adapters.pubsub_errors import COMMAND_ERRORS, CREDENTIAL_ERRORS
from dispatcher.commands.common import config_option, settings_or_exit
from dispatcher.commands.deadletter_options import (
    EXIT_CODES,
    ORDERS_TOPIC_ENV,
    PUBLISH_TIMEOUT_SECONDS,
    idle_timeout_option,
    max_scan_option,
    project_option,
    reason_option,
    since_option,
    since_time,
    stage_option,
    subscription_option,
)
from dispatcher.commands.output import output_option
from dispatcher.commands.progress import Meter
from dispatcher.commands.pubsub_access import (
    PULL_BATCH,
    Scan,
    dead_letter_subscription,
    explain,
    orders_topic,
    qualify,
)
from dispatcher.commands.replay_summary import ReplayTally, print_replay, replay_document
from dispatcher.core.ratelimit import Pacer
from dispatcher.core.replay import DeadLetterRecord, Selection, replay_attributes
from dispatcher.core.sweep import Sweep
from dispatcher.logging import get_logger

log = get_logger()
INTERRUPTED_EXIT = 130


@click.command("replay", epilog=EXIT_CODES)
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
@stage_option
@since_option
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most this many.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Publish at most this many per second (default: as fast as Pub/Sub takes them).",
)
@idle_timeout_option
@max_scan_option
@click.option(
    "--lease-seconds",
    type=click.IntRange(min=10, max=600),
    default=LEASE_SECONDS,
    show_default=True,
    help="How long a pulled dead letter stays hidden from others; after a crash it comes back "
    "this long after its last renewal.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@output_option
def replay_command(
    *,
    subscription: str | None,
    to_topic: str | None,
    project: str | None,
    config_path: Path | None,
    reasons: tuple[str, ...],
    order_ids: tuple[str, ...],
    stages: tuple[str, ...],
    since: str | None,
    limit: int | None,
    rate: float | None,
    idle_timeout: float,
    max_scan: int | None,
    lease_seconds: int,
    dry_run: bool,
    output: str,
) -> None:
    """Publish dead letters' original messages to the orders topic again, then ack them.

    Streams through any number of dead letters until none arrived for --idle-timeout seconds
    (or --limit / --max-scan is reached). The original data and attributes are sent; dlq_*,
    original_message_id, original_publish_time, dispatcher_version and Pub/Sub's
    CloudPubSubDeadLetterSource* attributes are removed and replayed_from=<dead letter's
    message id> is added. A dead letter is acked only after its message was published; dead
    letters that do not match the filters (--reason, --order-id, --stage, --since) are held
    (never pulled twice in one run) and given back untouched at the end. Stops at the first
    failed publish. Ctrl-C or a crash loses nothing; at most the batch in flight is published
    twice (the dispatcher dedupes by order id). Replaying a reason caused by the message itself
    (invalid_json, schema, ...) only dead-letters it again.
    """
    settings = settings_or_exit(config_path)
    project_id = project or settings.pubsub.project
    path = dead_letter_subscription(subscription, settings=settings, project=project)
    selection = Selection(
        reasons=frozenset(reasons),
        order_ids=frozenset(order_ids),
        stages=frozenset(stages),
        since=since_time(since),
    )
    sweep = Sweep(
        selection=selection,
        clock=time.monotonic,
        idle_timeout=idle_timeout,
        limit=limit,
        max_scan=max_scan,
    )
    pacer = None if rate is None else Pacer(rate=rate, clock=time.monotonic, sleep=time.sleep)
    tally = ReplayTally()
    topic = to_topic or "?"
    interrupted = False
    try:
        publisher = None if dry_run else publisher_client()
    except CREDENTIAL_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc
    meter = Meter("would replay" if dry_run else "replaying", total=limit)
    try:
        with subscriber_client() as subscriber:
            topic = (
                qualify(to_topic, kind="topics", project=project_id)
                if to_topic
                else orders_topic(subscriber, settings=settings, project=project)
            )
            with LeasedPull(subscriber, path, lease_seconds=lease_seconds) as queue, meter:
                batch_size = PULL_BATCH if pacer is None else pacer.batch_size(PULL_BATCH)
                try:
                    for batch in Scan(queue=queue, sweep=sweep, batch_size=batch_size).batches():
                        tally.chose(batch)
                        if publisher is not None:
                            sent = _republish(
                                publisher=publisher,
                                topic=topic,
                                batch=batch,
                                tally=tally,
                                pacer=pacer,
                                queue=queue,
                            )
                            queue.ack(sent)
                        done = sweep.chosen if dry_run else sum(tally.replayed.values())
                        meter.update(done=done, looked_at=sweep.looked_at)
                        if batch:
                            tally.busy_seconds = meter.seconds
                        if tally.errors:
                            sweep.stop("a publish failed")
                except KeyboardInterrupt:
                    interrupted = True
                    sweep.stop("interrupted")
    except COMMAND_ERRORS as exc:
        raise click.ClickException(explain(exc)) from exc
    finally:
        if publisher is not None:
            publisher.stop()
    document = replay_document(
        sweep=sweep,
        tally=tally,
        subscription=path,
        topic=topic,
        dry_run=dry_run,
        seconds=meter.seconds,
    )
    print_replay(document, output)
    if tally.errors:
        raise click.ClickException(f"{len(tally.errors)} publish(es) failed: {tally.errors[0]}")
    if interrupted:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _republish(
    *,
    publisher: Any,
    topic: str,
    batch: list[DeadLetterRecord],
    tally: ReplayTally,
    pacer: Pacer | None,
    queue: LeasedPull,
) -> list[str]:
    """Publish each original message; the dead-letter ids that are now safe to ack."""
    futures = []
    for record in batch:
        if pacer is not None:
            pacer.take(while_waiting=queue.renew)
        attributes = replay_attributes(record.attributes, dead_letter_id=record.message_id)
        futures.append((record, publisher.publish(topic, record.data, **attributes)))
    done: list[str] = []
    for record, future in futures:
        try:
            new_id = future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the dead letter
            tally.failed[record.reason] += 1
            tally.errors.append(f"{record.message_id}: {exc}")
            continue
        done.append(record.message_id)
        tally.replayed[record.reason] += 1
        log.info(
            "dead_letter_replayed",
            order_id=record.order_id,
            message_id=record.message_id,
            new_message_id=new_id,
            reason=record.reason,
        )
    return done
