"""Workflow objects with a status tree shaped the way Argo's controller writes it.

Exit-handler tests (unit and Pub/Sub) need finished order-pipeline Workflows without running
one: node ids, ``boundaryID``, ``children``, display names with the loop item after the index,
Retry nodes over their attempts. tests/cluster checks the same shape on the real controller.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SUCCEEDED = "Succeeded"
STEPS = ("fetch-input", "validate", "process", "publish-output")


def _node_id(wf: str, name: str) -> str:
    return f"{wf}-{int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)}"


def _display(index: int, item: dict[str, Any]) -> str:
    # Argo's text for a map item: sorted key:value pairs, nested maps as map[...]
    def text(value: Any) -> str:
        if isinstance(value, dict):
            return "map[" + " ".join(f"{k}:{text(v)}" for k, v in sorted(value.items())) + "]"
        return str(value)

    return f"order({index}:" + ",".join(f"{k}:{text(v)}" for k, v in sorted(item.items())) + ")"


def argo_workflow(
    items: list[dict[str, Any]],
    *,
    failing: dict[int, str] | None = None,
    retried: dict[int, str] | None = None,
    unstarted: frozenset[int] = frozenset(),
    name: str = "bd-small-0123456789abcdef",
) -> dict[str, Any]:
    """A finished order-pipeline Workflow: order i fails at step failing[i]; a step in
    retried[i] fails once and passes on its second attempt."""
    failing, retried = failing or {}, retried or {}
    nodes: dict[str, dict[str, Any]] = {}
    root = {"id": name, "name": name, "displayName": name, "type": "DAG", "templateName": "main"}
    nodes[name] = root | {"children": [], "phase": "Failed" if failing else SUCCEEDED}
    for index, item in enumerate(items):
        if index in unstarted:
            continue
        display = _display(index, item)
        order_name = f"{name}.{display}"
        order_id = _node_id(name, order_name)
        nodes[name]["children"].append(order_id)
        order_phase = "Failed" if index in failing else SUCCEEDED
        nodes[order_id] = {
            "id": order_id,
            "name": order_name,
            "displayName": display,
            "type": "DAG",
            "templateName": "order",
            "boundaryID": name,
            "phase": order_phase,
            "message": "child failed" if index in failing else "",
            "inputs": {"parameters": [{"name": "order-id", "value": item["order_id"]}]},
            "children": [],
        }
        for step in STEPS:
            step_name = f"{order_name}.{step}"
            retry_id = _node_id(name, step_name)
            fails = failing.get(index) == step
            attempts = ["Failed", SUCCEEDED] if retried.get(index) == step else ["Failed"] * 4
            if not fails and retried.get(index) != step:
                attempts = [SUCCEEDED]
            nodes[order_id]["children"].append(retry_id)
            nodes[retry_id] = {
                "id": retry_id,
                "name": step_name,
                "displayName": step,
                "type": "Retry",
                "templateName": "step",
                "boundaryID": order_id,
                "phase": "Failed" if fails else SUCCEEDED,
                "message": "No more retries left" if fails else "",
                "children": [],
            }
            for attempt, phase in enumerate(attempts):
                pod_id = _node_id(name, f"{step_name}({attempt})")
                nodes[retry_id]["children"].append(pod_id)
                nodes[pod_id] = {
                    "id": pod_id,
                    "name": f"{step_name}({attempt})",
                    "displayName": f"{step}({attempt})",
                    "type": "Pod",
                    "templateName": "step",
                    "boundaryID": order_id,
                    "phase": phase,
                    "message": "Error (exit code 3)" if phase == "Failed" else "",
                    "finishedAt": f"2026-01-01T00:00:0{attempt}Z",
                }
            if fails:
                break
    orders = json.dumps(items, separators=(",", ":"))
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "workflowTemplateRef": {"name": "order-pipeline"},
            "arguments": {"parameters": [{"name": "orders", "value": orders}]},
        },
        "status": {"nodes": nodes},
    }


def item(order_id: str, **params: Any) -> dict[str, Any]:
    return {"input_uri": f"gs://in/{order_id}", "order_id": order_id, "params": params}
