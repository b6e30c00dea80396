"""Changing the live limits inside a configuration file without losing its comments.

``dispatcher limits set`` rewrites the ``config.yaml`` held in a ConfigMap. Operators annotate
that file, so values are replaced in place (PyYAML's node marks give each scalar's position)
rather than by re-dumping the whole document; only when the file's layout does not allow that
(flow style, aliases) is it re-dumped, and the caller is told. Every edit is validated by
:func:`dispatcher.config.parse_settings`, the same check the service applies on reload.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from dispatcher.config import Settings, parse_settings
from dispatcher.core.limits import GLOBAL_LIVE_FIELDS, live_values

#: The live fields come from one list (core/limits.py), shared with the service's reload.
GLOBAL_FIELDS = GLOBAL_LIVE_FIELDS

Number = int | float


class LimitEditError(ValueError):
    """The requested change cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class LimitChange:
    """Set ``limits.<field>`` (``size_class`` None) or ``classes[<name>].max_live_workflows``."""

    field: str
    value: Number
    size_class: str | None = None

    @property
    def label(self) -> str:
        if self.size_class is None:
            return f"limits.{self.field}"
        return f"classes[{self.size_class}].{self.field}"


@dataclass(frozen=True, slots=True)
class DiffRow:
    field: str
    before: Number
    after: Number


@dataclass(frozen=True, slots=True)
class LimitEdit:
    """The outcome of an edit: the new text, both parsed versions and what changed."""

    text: str
    before: Settings
    after: Settings
    rows: tuple[DiffRow, ...]
    comments_kept: bool


def diff_limits(before: Settings, after: Settings) -> list[DiffRow]:
    old, new = live_values(before), live_values(after)
    return [
        DiffRow(field=key, before=old[key], after=new[key])
        for key in new
        if key in old and old[key] != new[key]
    ]


def edit_limits(text: str, changes: Sequence[LimitChange], *, source: str) -> LimitEdit:
    """Apply ``changes`` to a configuration text; raise ConfigError or LimitEditError."""
    before = parse_settings(text, source=source, environ={})
    names = [c.name for c in before.classes]
    for change in changes:
        if change.size_class is not None and change.size_class not in names:
            raise LimitEditError(f"no size class {change.size_class!r}; the classes are {names}")
        if change.size_class is None and change.field not in GLOBAL_FIELDS:
            raise LimitEditError(f"limits.{change.field} is not a live limit")
    new_text = _edit_in_place(text, changes)
    comments_kept = new_text is not None
    if new_text is None or not _took_effect(new_text, changes, source=source):
        new_text = _redump(text, changes)
        comments_kept = False
    after = parse_settings(new_text, source=f"{source} (changed)", environ={})
    return LimitEdit(
        text=new_text,
        before=before,
        after=after,
        rows=tuple(diff_limits(before, after)),
        comments_kept=comments_kept,
    )


def _value_of(settings: Settings, change: LimitChange) -> Number:
    if change.size_class is None:
        value: Number = getattr(settings.limits, change.field)
        return value
    return settings.size_class(change.size_class).max_live_workflows


def _took_effect(text: str, changes: Sequence[LimitChange], *, source: str) -> bool:
    try:
        settings = parse_settings(text, source=source, environ={})
    except Exception:  # noqa: BLE001 - the re-dump path validates again and reports
        return False
    return all(_value_of(settings, change) == change.value for change in changes)


def _scalar(value: Number) -> str:
    if isinstance(value, bool):
        raise LimitEditError("limits are numbers, not booleans")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise LimitEditError(f"{value} is not a usable limit")
    # No exponent: YAML 1.1 (PyYAML) reads "1e-05" as a string.
    return f"{value:.12f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"


# -- in-place editing ----------------------------------------------------------------------
_Edit = tuple[int, int, str]  # start, end, replacement


def _edit_in_place(text: str, changes: Sequence[LimitChange]) -> str | None:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        return None
    edits: list[_Edit] = []
    appended: list[str] = []
    for change in changes:
        if change.size_class is None:
            section = _get(root, "limits")
            if section is None:
                appended.append(f"  {change.field}: {_scalar(change.value)}")
                continue
            if not isinstance(section, yaml.MappingNode):
                return None
            mapping = section
        else:
            found = _class_node(root, change.size_class)
            if found is None:
                return None
            mapping = found
        edit = _set(mapping, change.field, _scalar(change.value), text)
        if edit is None:
            return None
        edits.append(edit)
    result = text
    for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        result = result[:start] + replacement + result[end:]
    if appended:
        result = result.rstrip("\n") + "\nlimits:\n" + "\n".join(appended) + "\n"
    return result


def _get(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node  # type: ignore[no-any-return]
    return None


def _class_node(root: yaml.MappingNode, name: str) -> yaml.MappingNode | None:
    classes = _get(root, "classes")
    if not isinstance(classes, yaml.SequenceNode):
        return None
    for item in classes.value:
        if isinstance(item, yaml.MappingNode):
            named = _get(item, "name")
            if isinstance(named, yaml.ScalarNode) and named.value == name:
                return item
    return None


def _set(mapping: yaml.MappingNode, key: str, scalar: str, text: str) -> _Edit | None:
    if mapping.flow_style:
        return None
    value = _get(mapping, key)
    if value is not None:
        if not isinstance(value, yaml.ScalarNode) or value.style not in (None, ""):
            return None
        if text[value.start_mark.index] == "*":  # an alias; replacing it changes its meaning
            return None
        return value.start_mark.index, value.end_mark.index, scalar
    if not mapping.value:
        return None
    # Insert a new key after the mapping's last entry, at the indentation of its keys.
    first_key = mapping.value[0][0]
    indent = first_key.start_mark.column
    last_value = mapping.value[-1][1]
    if not isinstance(last_value, yaml.ScalarNode):
        return None
    line_end = text.find("\n", last_value.end_mark.index)
    position = len(text) if line_end < 0 else line_end
    return position, position, "\n" + " " * indent + f"{key}: {scalar}"


def _redump(text: str, changes: Sequence[LimitChange]) -> str:
    raw: Any = yaml.safe_load(text) or {}
    for change in changes:
        if change.size_class is None:
            raw.setdefault("limits", {})[change.field] = change.value
            continue
        for item in raw.get("classes", []):
            if isinstance(item, dict) and item.get("name") == change.size_class:
                item[change.field] = change.value
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
