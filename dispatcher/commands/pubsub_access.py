"""How operator commands reach Pub/Sub: resource names, credentials and the scanning loop.

``dead-letter inspect``, ``dead-letter replay`` and ``report`` share these so that names are
qualified alike (short name + project, or a full path), missing credentials read as advice
rather than a traceback, and pulling stops for the same, stated reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from dispatcher.adapters.leased_pull import LeasedPull
from dispatcher.adapters.pubsub_errors import explain, topic_of
from dispatcher.commands.output import console
from dispatcher.config import Settings
from dispatcher.core.replay import DeadLetterRecord, Selection

__all__ = ["explain"]  # re-exported for the commands

INSPECT_SUFFIX = "-inspect"
PULL_BATCH = 500


def dead_letter_subscription(name: str | None, *, settings: Settings, project: str | None) -> str:
    """The operators' subscription: as given, else ``<dead_letter_topic>-inspect``."""
    project_id = project or settings.pubsub.project
    if name is not None:
        return qualify(name, kind="subscriptions", project=project_id)
    topic = settings.pubsub.dead_letter_topic_path()
    if project is not None and not settings.pubsub.dead_letter_topic.startswith("projects/"):
        topic = qualify(settings.pubsub.dead_letter_topic, kind="topics", project=project)
    return topic.replace("/topics/", "/subscriptions/", 1) + INSPECT_SUFFIX


def orders_topic(
    subscriber: Any, *, settings: Settings, project: str | None, option: str = "--to-topic"
) -> str:
    """The topic the dispatcher's own subscription reads from, asked of Pub/Sub."""
    path = qualify(
        settings.pubsub.subscription,
        kind="subscriptions",
        project=project or settings.pubsub.project,
    )
    return topic_of(subscriber, path, option=option)


def qualify(name: str, *, kind: str, project: str) -> str:
    """``projects/<project>/<kind>/<name>`` unless ``name`` is a full path already."""
    return name if name.startswith("projects/") else f"projects/{project}/{kind}/{name}"


@dataclass
class Scan:
    """Pulls batches and splits them into chosen and passed-over dead letters."""

    queue: LeasedPull
    selection: Selection
    limit: int | None
    max_scan: int
    scanned: list[DeadLetterRecord] = field(default_factory=list)
    chosen: int = 0
    stopped: str = "the subscription returned no more messages"

    def batches(self) -> Iterator[list[DeadLetterRecord]]:
        while True:
            if self.limit is not None and self.chosen >= self.limit:
                self.stopped = f"--limit {self.limit} reached"
                return
            if len(self.scanned) >= self.max_scan:
                self.stopped = f"--max-scan {self.max_scan} reached"
                return
            records = self.queue.pull(min(PULL_BATCH, self.max_scan - len(self.scanned)))
            if not records:
                return
            self.scanned.extend(records)
            batch: list[DeadLetterRecord] = []
            for record in records:
                room = self.limit is None or self.chosen < self.limit
                if room and self.selection.matches(record):
                    batch.append(record)
                    self.chosen += 1
            yield batch


def progress_bar(description: str, total: int | None) -> tuple[Progress, Any]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    )
    return progress, progress.add_task(description, total=total)
