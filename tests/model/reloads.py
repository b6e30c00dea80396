"""Reloads in the model: whole edited files through the service's own reload code.

Issue 8, defect 7: a reload once handed the whole new file to the engine, so an edit that also
changed a field that is not live (the environment, a template, a node pool...) was half
applied: Workflows were rendered from the new file while the watch kept the old selector, and
became invisible to caps and dedupe. Here a reload is an edited copy of the running
configuration handed to ``Service.apply`` (``compare`` → live changes, or a refusal of the
whole file), and every created Workflow is checked against the file the replica started with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dispatcher.config import Settings
from dispatcher.core.batching import Batch
from dispatcher.core.limits import LimitsChanged
from dispatcher.core.render import (
    LABEL_CLASS,
    LABEL_REPLICA,
    NAME_HASH_CHARS,
    render_workflow,
    selector,
)
from dispatcher.service.assembly import Service

#: Edits of fields that are not live: a file with any of them must be refused whole.
NON_LIVE_EDITS = ("environment", "max_order_bytes", "template", "node_pool", "name_prefix")


def edited(settings: Settings, *, cap: int, edit: str | None, large: str = "active") -> Settings:
    """``settings`` with every class cap set to ``cap``, the large class in state ``large``
    (a live field too) and at most one non-live field edited."""
    last = settings.classes[-1].name
    classes = [
        c.model_copy(
            update={"max_live_workflows": cap, "state": large if c.name == last else c.state}
        )
        for c in settings.classes
    ]
    update: dict[str, Any] = {"classes": classes}
    if edit == "environment":
        update["environment"] = f"{settings.environment}-staging"
    elif edit == "max_order_bytes":
        orders = settings.orders
        update["orders"] = orders.model_copy(
            update={"max_order_bytes": orders.max_order_bytes // 2}
        )
    elif edit == "template":
        classes[0] = classes[0].model_copy(update={"template": f"{classes[0].template}-v2"})
    elif edit == "node_pool":
        classes[-1] = classes[-1].model_copy(update={"node_pool": "another-pool"})
    elif edit == "name_prefix":
        update["workflow_name_prefix"] = f"{settings.workflow_name_prefix}x"
    return settings.model_copy(update=update)


class ReloadTarget:
    """What ``Service.apply`` touches of a running service: its settings and the runner.

    ``apply`` runs the service's real reload code against this stand-in, so the model checks
    the path a changed ConfigMap takes in production, not a copy of it.
    """

    def __init__(self, settings: Settings, *, on_change: Callable[[LimitsChanged], None]) -> None:
        self.settings = settings
        self.runner = self
        self._on_change = on_change
        self._class_streams = None  # the model's broker has one queue: nothing to close

    def limits_changed(self, event: LimitsChanged) -> None:
        self._on_change(event)

    def apply(self, settings: Settings) -> bool:
        return Service.apply(self, settings)  # type: ignore[arg-type]


def rendering_breach(body: Mapping[str, Any], *, started: Settings) -> str | None:
    """Why ``body`` is not what the file a replica started with renders, or None.

    Live fields do not change a rendering, so everything but the orders (and the name's
    hash) must match: labels, including the selector the replica's watch uses, namespace,
    template and arguments.
    """
    metadata = body["metadata"]
    labels = metadata["labels"]
    expected = render_workflow(
        Batch(labels[LABEL_CLASS], (), 0.0), settings=started, replica=labels.get(LABEL_REPLICA)
    )
    wanted = dict(part.split("=", 1) for part in selector(started.environment).split(","))
    if any(labels.get(key) != value for key, value in wanted.items()):
        return f"{metadata['name']}: labels {labels} outside the watch's selector {wanted}"
    checks = {
        "labels": (labels, expected["metadata"]["labels"]),
        "namespace": (metadata["namespace"], expected["metadata"]["namespace"]),
        "name": (
            metadata["name"][:-NAME_HASH_CHARS],
            expected["metadata"]["name"][:-NAME_HASH_CHARS],
        ),
        "template": (body["spec"]["workflowTemplateRef"], expected["spec"]["workflowTemplateRef"]),
        "arguments": (_arguments(body), _arguments(expected)),
    }
    for what, (got, want) in checks.items():
        if got != want:
            return f"{metadata['name']}: {what} {got} != {want} (the file it started with)"
    return None


def _arguments(body: Mapping[str, Any]) -> dict[str, str]:
    parameters = body["spec"]["arguments"]["parameters"]
    return {p["name"]: p["value"] for p in parameters if p["name"] != "orders"}
