"""How operator commands reach Pub/Sub: resource names, credentials and the scanning loop.

``dead-letter inspect``, ``dead-letter replay`` and ``report`` share these so that names are
qualified alike (short name + project, or a full path), missing credentials read as advice
rather than a traceback, and pulling stops for the same, stated reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dispatcher.adapters.leased_pull import PULL_TIMEOUT_SECONDS, LeasedPull
from dispatcher.adapters.pubsub_errors import explain, topic_of
from dispatcher.config import Settings
from dispatcher.core.replay import DeadLetterRecord
from dispatcher.core.sweep import Sweep

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
    """Pulls fresh batches until the sweep says stop; each batch holds the chosen messages.

    Messages not chosen stay leased by ``queue`` until it closes, so one run never sees the same
    dead letter twice however many it streams through."""

    queue: LeasedPull
    sweep: Sweep
    batch_size: int = PULL_BATCH

    def batches(self) -> Iterator[list[DeadLetterRecord]]:
        while not self.sweep.should_stop():
            size = self.sweep.next_pull(self.batch_size)
            wait = min(PULL_TIMEOUT_SECONDS, self.sweep.idle_left())
            yield self.sweep.take(self.queue.pull(size, timeout=wait))
