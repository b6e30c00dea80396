"""The limits an operator may change while the service runs, and nothing else.

One list (:data:`LIVE_FIELDS`) says which configuration fields are live. ``limits set``, the
service's reload and docs/operations.md all use it: a reload that changes any other field is
refused as a whole (never half-applied), and the service keeps running on the old values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.core.settings import Settings

#: Global limits taken live, by their field name under ``limits``.
GLOBAL_LIVE_FIELDS = ("workflows_per_second", "burst", "max_workflow_objects")
#: Per-class fields taken live, under ``classes[<name>]``.
CLASS_LIVE_FIELDS = ("max_live_workflows", "state")
#: Every live field, as the labels the logs, the CLI and the docs use.
LIVE_FIELDS = tuple(f"limits.{name}" for name in GLOBAL_LIVE_FIELDS) + tuple(
    f"classes[*].{name}" for name in CLASS_LIVE_FIELDS
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The live limits as one value: what a reload hands to the engine."""

    workflows_per_second: float
    burst: int
    max_workflow_objects: int
    class_caps: Mapping[str, int]
    #: ``paused`` or ``draining`` classes; a class not named here is active.
    class_states: Mapping[str, str] = field(default_factory=dict)

    def cap(self, size_class: str) -> int:
        return self.class_caps[size_class]

    def state(self, size_class: str) -> str:
        return self.class_states.get(size_class, "active")


@dataclass(frozen=True, slots=True)
class LimitsChanged:
    """A reload's event: the engine takes exactly these values."""

    limits: Limits


def limits_of(settings: Settings) -> Limits:
    return Limits(
        workflows_per_second=settings.limits.workflows_per_second,
        burst=settings.limits.burst,
        max_workflow_objects=settings.limits.max_workflow_objects,
        class_caps={c.name: c.max_live_workflows for c in settings.classes},
        class_states={c.name: c.state for c in settings.classes if c.state != "active"},
    )


def live_values(settings: Settings) -> dict[str, Any]:
    """Every live field's value, by label (``limits.burst``, ``classes[small].max_live_...``)."""
    values: dict[str, Any] = {
        f"limits.{name}": getattr(settings.limits, name) for name in GLOBAL_LIVE_FIELDS
    }
    for size_class in settings.classes:
        for name in CLASS_LIVE_FIELDS:
            values[f"classes[{size_class.name}].{name}"] = getattr(size_class, name)
    return values


@dataclass(frozen=True, slots=True)
class Reload:
    """What a changed file means: live changes to apply, or fields that refuse it."""

    changes: dict[str, tuple[Any, Any]]
    refused: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return not self.refused


def compare(old: Settings, new: Settings) -> Reload:
    """Split the differences between two configurations into live changes and refusals."""
    before, after = live_values(old), live_values(new)
    changes = {k: (before[k], after[k]) for k in after if k in before and before[k] != after[k]}
    refused = sorted(_differences(_without_live(old), _without_live(new), ""))
    return Reload(changes=changes, refused=tuple(refused))


def _without_live(settings: Settings) -> dict[str, Any]:
    raw = settings.model_dump(mode="json")
    for name in GLOBAL_LIVE_FIELDS:
        raw["limits"].pop(name, None)
    raw["classes"] = {
        c.pop("name"): {k: v for k, v in c.items() if k not in CLASS_LIVE_FIELDS}
        for c in raw["classes"]
    }
    return raw


def _differences(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            label = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                found.append(label)
            else:
                found.extend(_differences(old[key], new[key], label))
        return found
    return [] if old == new else [path or "(top level)"]
