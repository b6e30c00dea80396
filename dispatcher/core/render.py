"""The Workflow object for a batch: ``workflowTemplateRef`` plus arguments, nothing else.

Keeping the spec to a template reference and arguments makes it valid under Argo's
``templateReferencing: Strict``. The name is derived from the batch content, so creating the
same batch twice hits 409 AlreadyExists instead of running the work twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from dispatcher.core.batching import Batch
from dispatcher.core.settings import Settings, SizeClass

R = TypeVar("R")

API_VERSION = "argoproj.io/v1alpha1"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "burst-dispatcher"
LABEL_CLASS = "burst-dispatcher.io/size-class"
LABEL_ENVIRONMENT = "burst-dispatcher.io/environment"
LABEL_REPLICA = "burst-dispatcher.io/replica"
ANNOTATION_ORDER_IDS = "burst-dispatcher.io/order-ids"
ANNOTATION_MESSAGE_IDS = "burst-dispatcher.io/message-ids"
NAME_HASH_CHARS = 16
# The arguments every Workflow carries; WorkflowTemplates must declare exactly these.
WORKFLOW_PARAMETERS = (
    "orders",
    "size-class",
    "node-pool",
    "fallback-node-pool",
    "spot",
    "cpu",
    "memory",
    "environment",
    "priority",
)


#: Phases in which a Workflow counts against its class's cap (no phase yet = just created).
LIVE_PHASES = frozenset({"", "Pending", "Running"})


def selector(environment: str) -> str:
    """The label selector of this environment's dispatcher Workflows."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_ENVIRONMENT}={environment}"


def is_live(workflow: Mapping[str, Any]) -> bool:
    """The one rule for "live", used by the dispatcher's caps and by ``limits status``:
    new, Pending or Running, and not being deleted."""
    metadata = workflow.get("metadata") or {}
    phase = (workflow.get("status") or {}).get("phase") or ""
    return phase in LIVE_PHASES and not metadata.get("deletionTimestamp")


def workflow_name(prefix: str, size_class: str, order_ids: tuple[str, ...]) -> str:
    """``<prefix>-<class>-<16 hex>``: a DNS-1123 label, at most 63 characters."""
    digest = hashlib.sha256()
    digest.update(size_class.encode())
    for order_id in sorted(order_ids):
        digest.update(b"\0")
        digest.update(order_id.encode("utf-8"))
    return f"{prefix}-{size_class}-{digest.hexdigest()[:NAME_HASH_CHARS]}"


def render_workflow(
    batch: Batch[R],
    *,
    settings: Settings,
    message_ids: list[str] | None = None,
    replica: str | None = None,
) -> dict[str, Any]:
    """The Workflow body the dispatcher creates for ``batch``."""
    size_class = settings.size_class(batch.size_class)
    name = workflow_name(settings.workflow_name_prefix, size_class.name, batch.order_ids)
    annotations = {ANNOTATION_ORDER_IDS: _compact(list(batch.order_ids))}
    if message_ids is not None:
        annotations[ANNOTATION_MESSAGE_IDS] = _compact(message_ids)
    orders = "[" + ",".join(t.item_json for t in batch.tickets) + "]"
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_CLASS: size_class.name,
        LABEL_ENVIRONMENT: settings.environment,
    }
    if replica:
        labels[LABEL_REPLICA] = replica
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "workflowTemplateRef": {"name": size_class.template},
            "arguments": {"parameters": _parameters(orders, size_class, settings)},
        },
    }


def _parameters(orders: str, size_class: SizeClass, settings: Settings) -> list[dict[str, str]]:
    values = {
        "orders": orders,
        "size-class": size_class.name,
        "node-pool": size_class.node_pool,
        "fallback-node-pool": size_class.fallback_node_pool or size_class.node_pool,
        "spot": "true" if size_class.spot else "false",
        "cpu": size_class.cpu,
        "memory": size_class.memory,
        "environment": settings.environment,
        "priority": str(size_class.priority),
    }
    return [{"name": key, "value": values[key]} for key in WORKFLOW_PARAMETERS]


def _compact(values: list[str]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))
