"""Changing the live fields inside a configuration file without losing its comments.

``dispatcher limits set|pause|resume|drain`` rewrite the ``config.yaml`` held in a ConfigMap.
Operators annotate that file, so it is edited with ruamel.yaml's round-trip loader, which keeps
comments, key order, quoting and flow style, and changes only the values named. Only the live
fields (:mod:`dispatcher.core.limits`) may be edited, and every edit is validated by
:func:`dispatcher.config.parse_settings`, the same check the service applies on reload.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.representer import RoundTripRepresenter

from dispatcher.config import ConfigError, Settings, parse_settings
from dispatcher.core.limits import CLASS_LIVE_FIELDS, GLOBAL_LIVE_FIELDS, live_values

#: The live fields come from one list (core/limits.py), shared with the service's reload.
GLOBAL_FIELDS = GLOBAL_LIVE_FIELDS
CLASS_FIELDS = CLASS_LIVE_FIELDS

Value = int | float | str


class LimitEditError(ValueError):
    """The requested change cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class LimitChange:
    """Set ``limits.<field>`` (``size_class`` None) or ``classes[<name>].<field>``."""

    field: str
    value: Value
    size_class: str | None = None

    @property
    def label(self) -> str:
        if self.size_class is None:
            return f"limits.{self.field}"
        return f"classes[{self.size_class}].{self.field}"


@dataclass(frozen=True, slots=True)
class DiffRow:
    field: str
    before: Value
    after: Value


@dataclass(frozen=True, slots=True)
class LimitEdit:
    """The outcome of an edit: the new text, both parsed versions and what changed."""

    text: str
    before: Settings
    after: Settings
    rows: tuple[DiffRow, ...]


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
        _check(change, names)
    yaml = _round_trip()
    try:
        document = yaml.load(text)
    except YAMLError as exc:
        raise ConfigError(f"{source}: not YAML this editor can keep: {exc}") from exc
    for change in changes:
        _target(document, change)[change.field] = change.value
    out = io.StringIO()
    yaml.dump(document, out)
    new_text = out.getvalue()
    after = parse_settings(new_text, source=f"{source} (changed)", environ={})
    for change in changes:
        if _value_of(after, change) != change.value:  # e.g. a merge key that wins over it
            raise LimitEditError(f"{change.label}: the file's layout kept the edit from applying")
    return LimitEdit(
        text=new_text, before=before, after=after, rows=tuple(diff_limits(before, after))
    )


def _check(change: LimitChange, names: list[str]) -> None:
    if change.size_class is None:
        if change.field not in GLOBAL_FIELDS:
            raise LimitEditError(f"{change.label} is not a live field; live: {GLOBAL_FIELDS}")
    else:
        if change.size_class not in names:
            raise LimitEditError(f"no size class {change.size_class!r}; the classes are {names}")
        if change.field not in CLASS_FIELDS:
            raise LimitEditError(f"{change.label} is not a live field; live: {CLASS_FIELDS}")
    value = change.value
    if isinstance(value, bool):
        raise LimitEditError(f"{change.label}: limits are numbers, not booleans")
    if isinstance(value, float) and not math.isfinite(value):
        raise LimitEditError(f"{change.label}: {value} is not a usable limit")


def _target(document: Any, change: LimitChange) -> Any:
    if not isinstance(document, CommentedMap):
        raise LimitEditError("the configuration is not a YAML mapping")
    if change.size_class is None:
        if document.get("limits") is None:
            document["limits"] = CommentedMap()
        return document["limits"]
    for item in document.get("classes") or ():
        if isinstance(item, CommentedMap) and item.get("name") == change.size_class:
            return item
    raise LimitEditError(f"no size class {change.size_class!r} in the file")


def _value_of(settings: Settings, change: LimitChange) -> Value:
    owner: Any = settings.limits
    if change.size_class is not None:
        owner = settings.size_class(change.size_class)
    value: Value = getattr(owner, change.field)
    return value


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the operator wrote on one
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.Representer = _Representer
    return yaml


class _Representer(RoundTripRepresenter):
    """Floats without an exponent: PyYAML (YAML 1.1, the loader) reads ``1e-05`` as a string.
    ``null`` stays written out (ruamel would leave the value empty: same meaning, less clear)."""

    def represent_none(self, data: None) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")

    def represent_float(self, data: float) -> Any:
        text = f"{data:.12f}".rstrip("0").rstrip(".") if data != int(data) else f"{data:.1f}"
        return self.represent_scalar("tag:yaml.org,2002:float", text)


_Representer.add_representer(float, _Representer.represent_float)
_Representer.add_representer(type(None), _Representer.represent_none)
