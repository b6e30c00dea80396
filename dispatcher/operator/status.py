"""``dispatcher status``: one row per class, from the replicas' reports and the Workflow census.

Live Workflows come from the census (``operator/census.py``: the dispatcher's own rule, the
one ``limits status`` uses), never from adding up replicas, which each see every replica's
Workflows. What the replicas add is what only they know: orders they hold, creates in flight,
what they created in the last minute, and why they hold a class back (``core/admission.py``
hold reasons). From those, each class gets one plain answer to "why is it not moving?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.adapters.backlog import Backlog
from dispatcher.adapters.replica_status import ReplicaReport
from dispatcher.config import Settings
from dispatcher.operator.census import Census

#: A replica's hold reason, as an operator reads it (the first one that applies is shown).
HOLD_WORDS = {
    "paused": "paused",
    "draining": "draining",
    "class_cap": "at its cap",
    "object_cap": "at the Workflow object cap",
    "rate": "held by the creation rate",
    "in_flight": "creates in flight at their bound",
    "joining": "a replica is joining",
}


@dataclass(frozen=True, slots=True)
class ClassStatus:
    name: str
    held: int
    in_flight: int
    live: int
    cap: int | None
    created_per_minute: float
    why: str
    waiting: Backlog | None = None  # its own subscription's (class_topics routing)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.name,
            "waiting": self.waiting.waiting if self.waiting else None,
            "oldest_seconds": self.waiting.oldest_seconds if self.waiting else None,
            "held": self.held,
            "in_flight": self.in_flight,
            "live": self.live,
            "cap": self.cap,
            "created_per_minute": self.created_per_minute,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Status:
    environment: str
    namespace: str
    classes: tuple[ClassStatus, ...]
    replicas: tuple[ReplicaReport, ...]
    objects: int
    max_objects: int
    dead_letters_per_minute: float
    intake: Backlog | None = None  # the orders subscription (every class in direct routing)
    backlog_error: str = ""  # why Pub/Sub's backlog could not be read, if it could not

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "namespace": self.namespace,
            "classes": [c.to_json() for c in self.classes],
            "replicas": [
                {
                    "pod": r.pod,
                    "phase": r.phase,
                    "reachable": r.status is not None,
                    "error": r.error or None,
                }
                for r in self.replicas
            ],
            "workflow_objects": self.objects,
            "max_workflow_objects": self.max_objects,
            "dead_letters_per_minute": self.dead_letters_per_minute,
            "intake": {
                "waiting": self.intake.waiting if self.intake else None,
                "oldest_seconds": self.intake.oldest_seconds if self.intake else None,
            },
            "backlog_error": self.backlog_error or None,
        }


def backlog_subscriptions(settings: Settings) -> dict[str | None, str]:
    """The subscription ids whose backlog status shows: None for the intake, else a class."""
    pubsub = settings.pubsub
    wanted: dict[str | None, str] = {None: _short(pubsub.subscription_path())}
    if pubsub.routing == "class_topics":
        for size_class in settings.classes:
            wanted[size_class.name] = _short(pubsub.class_subscription_path(size_class.name))
    return wanted


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def summarize(
    settings: Settings,
    census: Census,
    replicas: Sequence[ReplicaReport],
    backlog: Mapping[str, Backlog] | str = "",
) -> Status:
    """``backlog``: figures per subscription id, or why they could not be read."""
    figures = backlog if not isinstance(backlog, str) else {}
    subscriptions = backlog_subscriptions(settings)
    reports = [r.status for r in replicas if r.status is not None]
    live = {c.name: c.live for c in census.classes}
    rows = []
    for size_class in settings.classes:
        name = size_class.name
        parts = [r.get("classes", {}).get(name, {}) for r in reports]
        held = sum(int(p.get("held", 0)) for p in parts)
        in_flight = sum(int(p.get("in_flight", 0)) for p in parts)
        caps = [p["cap"] for p in parts if p.get("cap") is not None]
        cap = max(caps) if caps else size_class.max_live_workflows
        rows.append(
            ClassStatus(
                name=name,
                held=held,
                in_flight=in_flight,
                live=live.get(name, 0),
                cap=cap,
                created_per_minute=round(
                    sum(float(p.get("created_per_minute", 0)) for p in parts), 2
                ),
                why=_why(
                    held=held,
                    live=live.get(name, 0),
                    cap=cap,
                    holds=(p.get("hold") for p in parts),
                    reachable=bool(reports),
                ),
                waiting=figures.get(subscriptions.get(name, "")),
            )
        )
    return Status(
        environment=settings.environment,
        namespace=settings.namespace,
        classes=tuple(rows),
        replicas=tuple(replicas),
        objects=census.total,
        max_objects=census.max_objects,
        dead_letters_per_minute=round(
            sum(float(r.get("dead_letters_per_minute", 0)) for r in reports), 2
        ),
        intake=figures.get(subscriptions[None]),
        backlog_error=backlog if isinstance(backlog, str) else "",
    )


def _why(*, held: int, live: int, cap: int | None, holds: Iterable[Any], reachable: bool) -> str:
    if not reachable:
        return "no replica reachable"
    reasons = {str(h) for h in holds if h}
    for reason, words in HOLD_WORDS.items():
        if reason in reasons:
            return words
    if cap is not None and live >= cap and held:
        return HOLD_WORDS["class_cap"]
    if held:
        return "moving"
    return "no orders held"
