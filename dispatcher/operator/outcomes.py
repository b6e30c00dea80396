"""Per-order outcomes of a finished Workflow, read from the Workflow's own status tree.

One Workflow runs many orders, but upstream needs one answer per order. The answer must not
depend on text that order data or a step can shape: Argo writes a fanned-out item (the order,
params and all) into the node's display name, and a step writes its own message. So orders are
joined to nodes only through what the controller alone writes: the fan-out node of order
``i`` is the child of the entrypoint DAG (``boundaryID``) running template ``order`` whose
display name *starts* with ``order(i:`` (the index precedes any item text) and whose
``order-id`` input is the order's id; a step belongs to the order whose fan-out node is its
``boundaryID``. Messages are only ever reported on the order they belong to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SUCCEEDED = "Succeeded"
FAILED = "Failed"
MAX_MESSAGE_CHARS = 1000
#: The fan-out task in order-pipeline's entrypoint DAG and the template it runs.
FAN_OUT_TEMPLATE = "order"
_FAN_OUT_NAME = re.compile(r"^order\((?P<index>\d+):")
_FAILED_PHASES = frozenset({"Failed", "Error"})
_GENERIC_MESSAGE = re.compile(r"^(child '[^']*' failed|child [^ ]+ failed|)$")


class ReportInputError(ValueError):
    """The Workflow cannot be read as one of the dispatcher's; the message says why."""


@dataclass(frozen=True, slots=True)
class FailedNode:
    """One failed node of the Workflow's status tree."""

    display_name: str
    message: str = ""
    template: str = ""
    phase: str = ""
    pod: str = ""
    finished_at: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "step": self.display_name,
            "template": self.template,
            "phase": self.phase,
            "message": self.message,
            "pod": self.pod,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result message for one order."""

    order_id: str
    workflow: str
    status: str
    failed_steps: tuple[FailedNode, ...] = ()
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "workflow": self.workflow,
            "status": self.status,
            "failed_steps": [node.to_json() for node in self.failed_steps],
            "message": self.message,
        }

    def attributes(self) -> dict[str, str]:
        return {"order_id": self.order_id, "workflow": self.workflow, "status": self.status}


def order_ids_of(workflow: Mapping[str, Any]) -> list[str]:
    """The order ids of the Workflow's ``orders`` argument, in fan-out order."""
    params = ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    text = next((p.get("value") for p in params if p.get("name") == "orders"), None)
    if not isinstance(text, str):
        raise ReportInputError("the Workflow has no orders argument")
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise ReportInputError(f"the orders argument is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise ReportInputError("the orders argument is not a JSON list")
    ids: list[str] = []
    for position, item in enumerate(items):
        order_id = item.get("order_id") if isinstance(item, dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise ReportInputError(f"orders item {position} has no order_id")
        ids.append(order_id)
    return ids


def outcomes(workflow: Mapping[str, Any], *, status: str) -> list[Outcome]:
    """One outcome per order of ``workflow`` (a Workflow object as the API returns it).

    ``status`` is ``{{workflow.status}}``: the exit handler runs before the Workflow's own
    phase is final.
    """
    name = str((workflow.get("metadata") or {}).get("name") or "")
    status = status.strip() or "Unknown"
    ids = order_ids_of(workflow)
    nodes: dict[str, dict[str, Any]] = dict((workflow.get("status") or {}).get("nodes") or {})
    fan_out = _fan_out_nodes(nodes, root=name, ids=ids)
    parents = {child: node_id for node_id, n in nodes.items() for child in n.get("children") or []}
    results: list[Outcome] = []
    for index, order_id in enumerate(ids):
        node = fan_out.get(index)
        phase = str(node.get("phase") or "") if node else ""
        if phase == SUCCEEDED:
            results.append(Outcome(order_id, name, SUCCEEDED))
        elif node is not None and phase in _FAILED_PHASES:
            failed = _failed_steps(nodes, parents, boundary=str(node.get("id")), wf=name)
            failed = failed or [_failed(node, wf=name, display=f"order({index})")]
            results.append(
                Outcome(order_id, name, FAILED, tuple(failed), _summary(failed, prefix=""))
            )
        else:
            state = f"ended {phase}" if phase else "never started"
            message = f"Workflow {status}; this order {state}"
            results.append(Outcome(order_id, name, status, (), message))
    return results


def _fan_out_nodes(
    nodes: Mapping[str, Mapping[str, Any]], *, root: str, ids: Sequence[str]
) -> dict[int, Mapping[str, Any]]:
    found: dict[int, Mapping[str, Any]] = {}
    for node in nodes.values():
        if node.get("templateName") != FAN_OUT_TEMPLATE or node.get("boundaryID") != root:
            continue
        match = _FAN_OUT_NAME.match(str(node.get("displayName") or ""))
        if match is None:
            continue
        index = int(match.group("index"))
        inputs = (node.get("inputs") or {}).get("parameters") or []
        own_id = next((p.get("value") for p in inputs if p.get("name") == "order-id"), None)
        if index < len(ids) and own_id == ids[index]:
            found[index] = node
    return found


def _failed_steps(
    nodes: Mapping[str, Mapping[str, Any]], parents: Mapping[str, str], *, boundary: str, wf: str
) -> list[FailedNode]:
    failed: list[FailedNode] = []
    for node_id, node in nodes.items():
        if node.get("boundaryID") != boundary or node.get("phase") not in _FAILED_PHASES:
            continue
        parent = nodes.get(parents.get(node_id, ""), {})
        if parent.get("type") == "Retry" and parent.get("phase") == SUCCEEDED:
            continue  # an attempt of a retry that later passed
        failed.append(_failed(node, wf=wf))
    return sorted(failed, key=lambda n: (n.finished_at, n.display_name))


def _failed(node: Mapping[str, Any], *, wf: str, display: str | None = None) -> FailedNode:
    template = str(node.get("templateName") or "")
    node_id = str(node.get("id") or "")
    pod = ""
    if node.get("type") == "Pod" and node_id.startswith(wf + "-"):
        pod = f"{wf}-{template}-{node_id.rsplit('-', 1)[-1]}"
    return FailedNode(
        display_name=display or str(node.get("displayName") or ""),
        message=str(node.get("message") or ""),
        template=template,
        phase=str(node.get("phase") or ""),
        pod=pod,
        finished_at=str(node.get("finishedAt") or ""),
    )


def _summary(nodes: Sequence[FailedNode], *, prefix: str) -> str:
    """The most telling messages first: a step's own error over "child ... failed"."""
    specific = [n for n in nodes if not _GENERIC_MESSAGE.match(n.message.strip())]
    parts: list[str] = []
    for node in specific or list(nodes):
        part = f"{node.display_name}: {node.message.strip() or node.phase or 'failed'}"
        if part not in parts:
            parts.append(part)
    text = prefix + "; ".join(parts[:3])
    if len(parts) > 3:
        text += f"; and {len(parts) - 3} more"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."
