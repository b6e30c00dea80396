"""How many of the dispatcher's Workflows exist, per size class, against the configured caps.

``dispatcher limits status`` answers "why is nothing being submitted?": a class at its cap, or
the namespace at ``limits.max_workflow_objects``. Counting is kept apart from listing so it is
testable on plain dictionaries; it uses the dispatcher's own rule (``core.render.is_live``): a
Workflow without a phase (not yet seen by the controller), Pending or Running, and not being
deleted, is live. Only this environment's Workflows are listed (the same label selector).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.config import Settings
from dispatcher.core.render import LABEL_CLASS, is_live


@dataclass(frozen=True, slots=True)
class ClassCount:
    """Workflows of one size class; ``cap`` is None for a class not in the configuration."""

    name: str
    cap: int | None
    new: int = 0
    pending: int = 0
    running: int = 0
    finished: int = 0

    @property
    def live(self) -> int:
        return self.new + self.pending + self.running

    @property
    def headroom(self) -> int | None:
        return None if self.cap is None else max(0, self.cap - self.live)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.name,
            "live": self.live,
            "cap": self.cap,
            "headroom": self.headroom,
            "new": self.new,
            "pending": self.pending,
            "running": self.running,
            "finished": self.finished,
        }


@dataclass(frozen=True, slots=True)
class Census:
    classes: tuple[ClassCount, ...]
    total: int
    max_objects: int
    workflows_per_second: float
    burst: int

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": [c.to_json() for c in self.classes],
            "total_objects": self.total,
            "max_workflow_objects": self.max_objects,
            "workflows_per_second": self.workflows_per_second,
            "burst": self.burst,
        }


def take_census(workflows: Iterable[Mapping[str, Any]], settings: Settings) -> Census:
    """Count Workflow objects (as the API returns them) per class and phase."""
    counts: dict[str, dict[str, int]] = {c.name: {} for c in settings.classes}
    total = 0
    for workflow in workflows:
        total += 1
        labels = (workflow.get("metadata") or {}).get("labels") or {}
        size_class = str(labels.get(LABEL_CLASS, "(no class label)"))
        phase = str((workflow.get("status") or {}).get("phase") or "")
        bucket = _bucket(phase) if is_live(workflow) else "finished"
        per_class = counts.setdefault(size_class, {})
        per_class[bucket] = per_class.get(bucket, 0) + 1
    caps = {c.name: c.max_live_workflows for c in settings.classes}
    rows = tuple(
        ClassCount(
            name=name,
            cap=caps.get(name),
            new=found.get("new", 0),
            pending=found.get("pending", 0),
            running=found.get("running", 0),
            finished=found.get("finished", 0),
        )
        for name, found in counts.items()
    )
    return Census(
        classes=rows,
        total=total,
        max_objects=settings.limits.max_workflow_objects,
        workflows_per_second=settings.limits.workflows_per_second,
        burst=settings.limits.burst,
    )


def _bucket(phase: str) -> str:
    if phase == "":
        return "new"
    if phase in ("Pending", "Running"):
        return phase.lower()
    return "finished"
