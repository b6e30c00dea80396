"""The dispatcher's configuration: size classes and limits, validated once at start-up.

Configuration is data, not code: one YAML file (a mounted ConfigMap in a cluster), with
environment variables (``DISPATCHER_<SECTION>__<FIELD>``) overriding scalar fields. A built-in
default ships inside the package so every command works without any file. A bad file stops
the program with a :class:`ConfigError` whose message names the field and the reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "DISPATCHER_"
ENV_CONFIG_FILE = "DISPATCHER_CONFIG"

DnsLabel = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)
]
ClassName = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$")]
StepName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,30}$")]
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")]
LabelValue = Annotated[
    str,
    StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"),
]

MAX_INT64 = 2**63 - 1


class ConfigError(Exception):
    """The configuration cannot be used; the message says which field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SizeClass(_Strict):
    """One size class: which orders belong to it and how their Workflows are shaped."""

    name: ClassName
    max_size_bytes: int | None = Field(
        default=None, ge=0, le=MAX_INT64, description="upper bound (inclusive); null = no bound"
    )
    template: DnsLabel
    max_orders_per_workflow: int = Field(ge=1, le=1000)
    max_batch_input_bytes: int = Field(ge=1, le=MAX_INT64)
    max_linger_seconds: float = Field(ge=0, le=600)
    node_pool: LabelValue
    spot: bool
    fallback_node_pool: LabelValue | None = Field(
        default=None, description="on-demand pool for the last retry; null = node_pool"
    )
    cpu: Quantity
    memory: Quantity
    max_live_workflows: int = Field(ge=0, le=100_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    hold_budget: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="class_topics routing: messages of this class held at most (flow control);"
        " null = 4 x max_orders_per_workflow",
    )

    def effective_hold_budget(self) -> int:
        return self.hold_budget or 4 * self.max_orders_per_workflow


class PubSubSettings(_Strict):
    """Where orders come from and where the dispatcher gives up on them."""

    project: str = "local-project"
    subscription: str = "orders-dispatcher"
    dead_letter_topic: str = "orders-dead-letter"
    max_messages: int = Field(default=2000, ge=1, le=100_000)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_lease_seconds: int = Field(default=3000, ge=10, le=86_400)
    routing: Literal["direct", "class_topics"] = Field(
        default="direct",
        description="direct: dispatch from the intake subscription; class_topics: route valid "
        "orders to a topic per class and dispatch from a subscription per class, so one "
        "saturated class cannot starve the others",
    )
    class_topic: str = Field(default="orders-{size_class}", pattern=r"\{size_class\}")
    class_subscription: str = Field(
        default="orders-{size_class}-dispatcher", pattern=r"\{size_class\}"
    )

    def subscription_path(self) -> str:
        return _qualify(self.project, "subscriptions", self.subscription)

    def class_topic_path(self, size_class: str) -> str:
        return _qualify(self.project, "topics", self.class_topic.format(size_class=size_class))

    def class_subscription_path(self, size_class: str) -> str:
        name = self.class_subscription.format(size_class=size_class)
        return _qualify(self.project, "subscriptions", name)

    def max_hold_seconds(self) -> float:
        """Held longer than this, an order is re-parked (republished) before its lease ends."""
        return self.max_lease_seconds * 0.8

    def dead_letter_topic_path(self) -> str:
        return _qualify(self.project, "topics", self.dead_letter_topic)


def _qualify(project: str, kind: str, name: str) -> str:
    return name if name.startswith("projects/") else f"projects/{project}/{kind}/{name}"


class GlobalLimits(_Strict):
    """Limits that protect the cluster as a whole, across classes and replicas."""

    workflows_per_second: float = Field(default=5.0, gt=0, le=10_000)
    burst: int = Field(default=20, ge=1, le=100_000)
    max_workflow_objects: int = Field(default=2000, ge=1, le=1_000_000)


class OrderLimits(_Strict):
    """Bounds on single orders and on the Workflow objects built from them."""

    max_order_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    max_workflow_object_bytes: int = Field(default=64 * 1024, ge=4096, le=1024 * 1024)

    @model_validator(mode="after")
    def _one_order_fits(self) -> Self:
        # A single order, rendered, must fit into one Workflow object with room for metadata.
        if self.max_workflow_object_bytes < 2 * self.max_order_bytes + 2048:
            raise ValueError(
                "max_workflow_object_bytes must be at least 2 * max_order_bytes + 2048 "
                "so that one order always fits into a Workflow"
            )
        return self


class ServiceSettings(_Strict):
    """How the long-running process behaves."""

    http_port: int = Field(default=8080, ge=0, le=65535)
    drain_seconds: float = Field(default=50, gt=0, le=3600)
    create_workers: int = Field(default=8, ge=1, le=128)
    reload_seconds: float = Field(default=10, gt=0, le=3600)


class DedupeSettings(_Strict):
    """The durable order-id ledger (``adapters/ledger.py``); read at start only."""

    window_seconds: float = Field(
        default=86_400,
        ge=3600,
        le=30 * 86_400,
        description="an order id seen within this window never becomes a second Workflow, "
        "across restarts and rollouts; keep it far longer than the Workflow TTL",
    )


class Settings(_Strict):
    """The whole configuration of one dispatcher deployment."""

    environment: LabelValue = "dev"
    namespace: DnsLabel = "burst-dispatcher"
    workflow_name_prefix: ClassName = "bd"
    pubsub: PubSubSettings = PubSubSettings()
    limits: GlobalLimits = GlobalLimits()
    orders: OrderLimits = OrderLimits()
    service: ServiceSettings = ServiceSettings()
    dedupe: DedupeSettings = DedupeSettings()
    optional_steps: dict[StepName, bool] = Field(default_factory=dict)
    classes: list[SizeClass] = Field(min_length=1)

    @field_validator("classes")
    @classmethod
    def _classes_ordered(cls, classes: list[SizeClass]) -> list[SizeClass]:
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        previous = -1
        for index, size_class in enumerate(classes):
            bound = size_class.max_size_bytes
            if bound is None and index != len(classes) - 1:
                raise ValueError(
                    f"class {size_class.name!r}: only the last class may have no max_size_bytes"
                )
            if bound is not None and bound <= previous:
                raise ValueError(
                    f"class {size_class.name!r}: max_size_bytes must increase from class to class"
                )
            previous = bound if bound is not None else previous
        return classes

    def size_class(self, name: str) -> SizeClass:
        for size_class in self.classes:
            if size_class.name == name:
                return size_class
        raise KeyError(name)


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


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``DISPATCHER_SECTION__FIELD=value`` on the file; values are parsed as YAML."""
    merged: dict[str, Any] = dict(raw)
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key == ENV_CONFIG_FILE:
            continue
        rest = key[len(ENV_PREFIX) :]
        if not _ENV_KEY.match(rest) or rest in {"LOG_FORMAT", "LOG_LEVEL"}:
            continue
        path = [part.lower() for part in rest.split("__")]
        node = merged
        for part in path[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[path[-1]] = yaml.safe_load(value) if value else value
    return merged


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s)):"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  - {where}: {error['msg']}")
    return "\n".join(lines)
