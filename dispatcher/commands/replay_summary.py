"""What a dead-letter replay did, as one document and as the tables an operator reads.

The same counts go to a person (tables) and to a script (``-o json|yaml``), so both are built
from one :class:`ReplayTally` and one document; the tables only format the document.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from dispatcher.commands.output import clip, console, print_document
from dispatcher.core.replay import DeadLetterRecord, replay_attributes, replay_fails_again
from dispatcher.core.sweep import Sweep

#: Dead letters a dry run lists (it streams through any number; a sample shows what they are).
SAMPLE = 50
REJECTED_AGAIN = "the message itself was rejected: expect it back"


@dataclass
class ReplayTally:
    """Counts per reason of one replay, the first errors, and a sample for the dry run."""

    selected: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    sample: list[DeadLetterRecord] = field(default_factory=list)
    #: Seconds from the start to the last batch chosen: the run without its idle tail.
    busy_seconds: float = 0.0

    def chose(self, batch: list[DeadLetterRecord]) -> None:
        self.selected.update(record.reason for record in batch)
        self.sample.extend(batch[: max(0, SAMPLE - len(self.sample))])


def replay_document(
    *,
    sweep: Sweep,
    tally: ReplayTally,
    subscription: str,
    topic: str,
    dry_run: bool,
    seconds: float,
) -> dict[str, Any]:
    replayed = sum(tally.replayed.values())
    reasons = [
        {
            "reason": reason,
            "looked_at": count,
            "selected": tally.selected[reason],
            "replayed": tally.replayed[reason],
            "failed": tally.failed[reason],
            "replay_fails_again": replay_fails_again(reason),
        }
        for reason, count in sweep.reason_counts()
    ]
    now = datetime.now(UTC)
    document: dict[str, Any] = {
        "subscription": subscription,
        "topic": topic,
        "dry_run": dry_run,
        "stopped": sweep.stopped,
        "looked_at": sweep.looked_at,
        "selected": sweep.chosen,
        "replayed": replayed,
        "failed": sum(tally.failed.values()),
        "given_back": sweep.looked_at - replayed,
        "seconds": round(seconds, 3),
        "busy_seconds": round(tally.busy_seconds, 3),
        "replayed_per_second": (
            round(replayed / tally.busy_seconds, 1) if tally.busy_seconds > 0 else 0.0
        ),
        "reasons": reasons,
        "errors": tally.errors[:20],
    }
    if dry_run:
        document["would_replay"] = [
            {
                **record.to_json(now),
                "attributes_sent": replay_attributes(
                    record.attributes, dead_letter_id=record.message_id
                ),
            }
            for record in tally.sample
        ]
    return document


def print_replay(document: dict[str, Any], output: str) -> None:
    """The summary as ``output`` says: tables, or one JSON/YAML document."""
    if output != "table":
        print_document(document, output)
        return
    out = console()
    dry_run = document["dry_run"]
    if dry_run:
        table = Table(
            title=f"Would replay to {document['topic']} (dry run: nothing published or acked)"
        )
        for column in ("message id", "order id", "reason", "attributes sent"):
            table.add_column(column)
        for message in document["would_replay"]:
            sent = message["attributes_sent"]
            table.add_row(
                message["message_id"],
                message["order_id"] or "",
                message["reason"],
                clip(", ".join(f"{k}={v}" for k, v in sorted(sent.items())), 100),
            )
        out.print(table)
        if document["selected"] > len(document["would_replay"]):
            out.print(f"... and {document['selected'] - len(document['would_replay']):,} more")
    summary = Table(title=f"Replay from {document['subscription']}")
    for column in ("reason", "looked at", "selected", "replayed", "failed", "note"):
        summary.add_column(column, justify="left" if column in ("reason", "note") else "right")
    for row in document["reasons"]:
        note = (
            "the message itself was rejected: expect it back" if row["replay_fails_again"] else ""
        )
        summary.add_row(
            row["reason"],
            f"{row['looked_at']:,}",
            f"{row['selected']:,}",
            "-" if dry_run else f"{row['replayed']:,}",
            "-" if dry_run else f"{row['failed']:,}",
            note,
        )
    out.print(summary)
    verb = "would replay" if dry_run else "replayed"
    count = document["selected"] if dry_run else document["replayed"]
    passed = document["looked_at"] - document["selected"]
    out.print(
        f"{verb} {count:,} of {document['looked_at']:,} dead letters looked at "
        f"({document['stopped']}); {passed:,} not selected and given back; "
        f"{document['seconds']:,.1f}s ({document['busy_seconds']:,.1f}s busy, "
        f"{document['replayed_per_second']:,.0f}/s)"
    )
