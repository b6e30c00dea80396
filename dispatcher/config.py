"""The dispatcher's configuration: size classes and limits, validated once at start-up.

Configuration is data, not code: one YAML file (a mounted ConfigMap in a cluster), with
environment variables (``DISPATCHER_<SECTION>__<FIELD>``, or ``DISPATCHER_<FIELD>`` for a
top-level field) overriding scalar fields; the CLI's own ``DISPATCHER_*`` option defaults have
no ``__`` and are left alone. A built-in default ships inside the package so every command
works without any file. A bad file stops the program with a :class:`ConfigError` whose message
names the field and the reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dispatcher.core.settings import (
    MAX_INT64,
    ClassName,
    DedupeSettings,
    DnsLabel,
    GlobalLimits,
    LabelValue,
    OrderLimits,
    PubSubSettings,
    Quantity,
    ServiceSettings,
    Settings,
    SizeClass,
    StepName,
)

__all__ = [
    "MAX_INT64",
    "ClassName",
    "ConfigError",
    "DedupeSettings",
    "DnsLabel",
    "GlobalLimits",
    "LabelValue",
    "OrderLimits",
    "PubSubSettings",
    "Quantity",
    "ServiceSettings",
    "Settings",
    "SizeClass",
    "StepName",
    "default_config_text",
    "load_settings",
    "parse_settings",
]

ENV_PREFIX = "DISPATCHER_"
ENV_CONFIG_FILE = "DISPATCHER_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which field and why."""


def default_config_text() -> str:
    """The built-in configuration, as YAML text (also what `dispatcher config show` prints)."""
    return resources.files("dispatcher").joinpath("defaults/config.yaml").read_text("utf-8")


def load_settings(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, merge and validate the configuration; raise :class:`ConfigError` when unusable.

    ``path`` defaults to ``$DISPATCHER_CONFIG`` and then to the built-in configuration.
    """
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get(ENV_CONFIG_FILE)
    if chosen is None:
        source, text = "<built-in default>", default_config_text()
    else:
        source = str(chosen)
        try:
            text = Path(chosen).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the configuration file: {exc}") from exc
    return parse_settings(text, source=source, environ=env)


def parse_settings(text: str, *, source: str, environ: Mapping[str, str]) -> Settings:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    merged = _apply_env_overrides(raw, environ)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from exc


_ENV_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _is_config_override(rest: str) -> bool:
    """Whether ``DISPATCHER_<rest>`` is a configuration override or one of the CLI's own names.

    Two namespaces share the prefix: config overrides are ``<SECTION>__<FIELD>`` (always a
    double underscore) or exactly a top-level scalar field (``ENVIRONMENT``); the CLI's option
    defaults (``DEAD_LETTER_SUBSCRIPTION``, ``ORDERS_TOPIC``, ``LOG_FORMAT`` ...) never contain
    ``__`` and name no top-level field (tests/unit/test_config.py walks every option to keep it
    so). A misspelt ``SECTION__FIELD`` still fails validation instead of being ignored.
    """
    if not _ENV_KEY.match(rest):
        return False
    return "__" in rest or rest.lower() in _TOP_LEVEL_SCALARS


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``DISPATCHER_SECTION__FIELD=value`` on the file; values are parsed as YAML."""
    merged: dict[str, Any] = dict(raw)
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key == ENV_CONFIG_FILE:
            continue
        rest = key[len(ENV_PREFIX) :]
        if not _is_config_override(rest):
            continue
        path = [part.lower() for part in rest.split("__")]
        node = merged
        for part in path[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[path[-1]] = yaml.safe_load(value) if value else value
    return merged


_TOP_LEVEL_SCALARS = frozenset(
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.default, str | int | float | bool)
)


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s)):"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  - {where}: {error['msg']}")
    return "\n".join(lines)
