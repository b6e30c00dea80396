"""Per-order outcomes of a finished Workflow, read from Argo's ``{{workflow.failures}}``.

One Workflow runs many orders, but upstream needs one answer per order. Argo's exit handler
only learns which *nodes* failed (display name, message, template, phase, pod, time), so this
module maps nodes to orders: a node that names an order (Argo puts a fanned-out item into the
display name, ``order(3:input_uri:...,order_id:o-7,...)``) belongs to that order. Orders run
independently (order-pipeline's fan-out has ``failFast: false``), so in a failed Workflow an
order none of whose nodes failed did succeed, unless Argo cut the Workflow short (deadline,
stop, terminate). Where no node can be mapped, every order gets the Workflow's own status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.order_mentions import OrderIndex

SUCCEEDED = "Succeeded"
FAILED = "Failed"
MAX_MESSAGE_CHARS = 1000

_RETRY_ATTEMPT = re.compile(r"^(?P<base>.+)\((?P<attempt>\d+)\)$")
_LOOP_INDEX = re.compile(r"^[^(]*\((?P<index>\d+):")
_GENERIC_MESSAGE = re.compile(r"^(child '[^']*' failed|child [^ ]+ failed|)$")
#: Messages of nodes Argo stopped: the Workflow hit its deadline or was stopped/terminated,
#: so orders without a failed step may never have started.
_CUT_SHORT = re.compile(r"deadline|stopped with strategy|shutdown with strategy|terminat", re.I)


class ReportInputError(ValueError):
    """An exit-handler argument cannot be read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class FailedNode:
    """One entry of ``{{workflow.failures}}``."""

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


def parse_failures(text: str | None) -> list[FailedNode]:
    """Read ``{{workflow.failures}}``; empty, ``null`` or an unresolved placeholder mean none."""
    if _absent(text):
        return []
    try:
        raw = json.loads(text or "")
    except ValueError as exc:
        raise ReportInputError(f"--failures is not JSON: {exc}") from exc
    if isinstance(raw, str):
        # Argo (v4) substitutes the failures as a JSON string holding the JSON list.
        try:
            raw = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise ReportInputError(f"--failures holds a string that is not JSON: {exc}") from exc
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise ReportInputError(f"--failures must be a JSON list, got {type(raw).__name__}")
    return [
        FailedNode(
            display_name=_text(item.get("displayName") or item.get("name")),
            message=_text(item.get("message")),
            template=_text(item.get("templateName")),
            phase=_text(item.get("phase")),
            pod=_text(item.get("podName")),
            finished_at=_text(item.get("finishedAt")),
        )
        for item in raw
        if isinstance(item, dict)
    ]


def parse_orders(text: str | None) -> list[str]:
    """Read the ``orders`` argument: a JSON list of items with ``order_id`` (or of ids)."""
    if _absent(text):
        raise ReportInputError("--orders is empty; it must be the Workflow's orders argument")
    try:
        raw = json.loads(text or "")
    except ValueError as exc:
        raise ReportInputError(f"--orders is not JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise ReportInputError(f"--orders must be a JSON list, got {type(raw).__name__}")
    order_ids: list[str] = []
    for position, item in enumerate(raw):
        order_id = item.get("order_id") if isinstance(item, dict) else item
        if not isinstance(order_id, str) or not order_id:
            raise ReportInputError(f"--orders item {position} has no order_id: {item!r:.200}")
        if order_id not in order_ids:
            order_ids.append(order_id)
    return order_ids


def outcomes(
    *, workflow: str, status: str, failures: Sequence[FailedNode], order_ids: Sequence[str]
) -> list[Outcome]:
    """One outcome per order; see the module docstring for the mapping rules."""
    status = status.strip() or "Unknown"
    nodes = _without_retried_attempts(failures)
    by_order, unattributed = _attribute(nodes, order_ids)
    if len(by_order) == 1 and unattributed:
        # One order failed: nested steps without the item in their name are most likely its.
        only = next(iter(by_order))
        by_order[only] = [*by_order[only], *unattributed]
        unattributed = []
    cut_short = next((n.message for n in nodes if _CUT_SHORT.search(n.message)), "")
    results: list[Outcome] = []
    for order_id in order_ids:
        own = by_order.get(order_id)
        if own:
            results.append(
                Outcome(
                    order_id=order_id,
                    workflow=workflow,
                    status=FAILED,
                    failed_steps=tuple(own),
                    message=_summary(own, prefix=""),
                )
            )
        elif status == SUCCEEDED:
            results.append(Outcome(order_id=order_id, workflow=workflow, status=SUCCEEDED))
        elif by_order and not cut_short:
            # Orders run independently (order-pipeline's DAG has failFast: false), so an
            # order none of whose steps failed ran to the end although the Workflow failed.
            message = f"Workflow {status} because of other orders; this order's steps passed"
            results.append(
                Outcome(order_id=order_id, workflow=workflow, status=SUCCEEDED, message=message)
            )
        elif by_order:
            message = (
                f"Workflow {status} and was cut short ({cut_short}); no step of this order "
                "failed, but it may not have run to the end"
            )
            results.append(
                Outcome(order_id=order_id, workflow=workflow, status=status, message=message)
            )
        else:
            prefix = f"Workflow {status}"
            message = _summary(nodes, prefix=prefix + ": ") if nodes else prefix
            results.append(
                Outcome(
                    order_id=order_id,
                    workflow=workflow,
                    status=status,
                    failed_steps=tuple(nodes),
                    message=message,
                )
            )
    return results


def _attribute(
    nodes: Sequence[FailedNode], order_ids: Sequence[str]
) -> tuple[dict[str, list[FailedNode]], list[FailedNode]]:
    index = OrderIndex(order_ids)
    by_order: dict[str, list[FailedNode]] = {}
    unattributed: list[FailedNode] = []
    for node in nodes:
        named = index.named_in(node.display_name) | index.named_in(node.message)
        for order_id in sorted(named, key=order_ids.index):
            by_order.setdefault(order_id, []).append(node)
        if not named:
            unattributed.append(node)
    if by_order:
        return by_order, unattributed
    # Fallback for loop items that do not carry the order id: the loop index. Used only when
    # no node names an order, since a nested loop's index would otherwise be misread.
    rest: list[FailedNode] = []
    for node in unattributed:
        match = _LOOP_INDEX.match(node.display_name)
        position = int(match.group("index")) if match else -1
        if 0 <= position < len(order_ids):
            by_order.setdefault(order_ids[position], []).append(node)
        else:
            rest.append(node)
    return by_order, rest


def _without_retried_attempts(failures: Sequence[FailedNode]) -> list[FailedNode]:
    """Drop failed attempts of a retry whose parent is not failed (a later attempt passed)."""
    failed_names = {node.display_name for node in failures}
    kept: list[FailedNode] = []
    for node in failures:
        match = _RETRY_ATTEMPT.match(node.display_name)
        if match and match.group("base") not in failed_names:
            continue
        kept.append(node)
    return kept


def _summary(nodes: Sequence[FailedNode], *, prefix: str) -> str:
    """The most telling messages first: a step's own error over "child ... failed"."""
    specific = [n for n in nodes if not _GENERIC_MESSAGE.match(n.message.strip())]
    chosen = specific or list(nodes)
    parts: list[str] = []
    for node in chosen:
        part = f"{_short_name(node.display_name)}: {node.message.strip() or node.phase or 'failed'}"
        if part not in parts:
            parts.append(part)
    text = prefix + "; ".join(parts[:3])
    if len(parts) > 3:
        text += f"; and {len(parts) - 3} more"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _short_name(display_name: str) -> str:
    """``process(3:input_uri:...,order_id:o-7)`` reads better as ``process(3)``."""
    match = _LOOP_INDEX.match(display_name)
    if match is None:
        return display_name
    head = display_name[: match.start("index")]
    return f"{head}{match.group('index')})"


def _absent(text: str | None) -> bool:
    stripped = (text or "").strip()
    return stripped in {"", "null", "None"} or (
        stripped.startswith("{{") and stripped.endswith("}}")
    )


def _text(value: object) -> str:
    return "" if value is None else str(value)
