"""``dispatcher plan``: what a swarm would become, without touching Pub/Sub or a cluster.

The plan runs the same core as the service (validation, classification, batching, rendering)
over a file of orders, as if the whole swarm arrived at once. Duplicate order ids are planned
once and counted, rejected lines are reported with the reason the service would dead-letter
them with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dispatcher.config import Settings
from dispatcher.core.batching import Batch, Batcher
from dispatcher.core.classify import Ticket
from dispatcher.core.intake import Intake, Refused
from dispatcher.core.order import Rejection
from dispatcher.core.render import render_workflow, workflow_name


@dataclass(frozen=True, slots=True)
class PlannedWorkflow:
    name: str
    size_class: str
    order_ids: tuple[str, ...]
    lines: tuple[int, ...]
    input_bytes: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    reason: str
    detail: str
    order_id: str | None


@dataclass(slots=True)
class ClassSummary:
    name: str
    template: str
    node_pool: str
    spot: bool
    orders: int = 0
    workflows: int = 0
    input_bytes: int = 0

    @property
    def orders_per_workflow(self) -> float:
        return self.orders / self.workflows if self.workflows else 0.0


@dataclass(slots=True)
class Plan:
    workflows: list[PlannedWorkflow] = field(default_factory=list)
    rejected: list[RejectedLine] = field(default_factory=list)
    classes: dict[str, ClassSummary] = field(default_factory=dict)
    lines_read: int = 0
    duplicates: int = 0

    @property
    def orders(self) -> int:
        return sum(c.orders for c in self.classes.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "workflows": [
                {"name": w.name, "class": w.size_class, "order_ids": list(w.order_ids)}
                for w in self.workflows
            ],
            "rejected": [
                {"line": r.line, "reason": r.reason, "detail": r.detail, "order_id": r.order_id}
                for r in self.rejected
            ],
            "summary": {
                "lines": self.lines_read,
                "orders": self.orders,
                "workflows": len(self.workflows),
                "rejected": len(self.rejected),
                "duplicates": self.duplicates,
                "classes": {
                    c.name: {
                        "orders": c.orders,
                        "workflows": c.workflows,
                        "orders_per_workflow": round(c.orders_per_workflow, 2),
                        "input_bytes": c.input_bytes,
                        "node_pool": c.node_pool,
                        "spot": c.spot,
                        "template": c.template,
                    }
                    for c in self.classes.values()
                },
            },
        }


def plan_orders(lines: Iterable[bytes], settings: Settings) -> Plan:
    """Plan every non-blank line of ``lines`` (1-based line numbers in the result)."""
    intake = Intake(settings)
    batcher: Batcher[int] = Batcher(settings)
    plan = Plan(
        classes={
            c.name: ClassSummary(c.name, c.template, c.node_pool, c.spot) for c in settings.classes
        }
    )
    seen: dict[str, Ticket[int]] = {}
    for number, raw in enumerate(lines, start=1):
        plan.lines_read = number
        data = raw.strip()
        if not data:
            continue
        ticket = intake(data, {}, receipt=number, now=0.0)  # the service's own intake
        if isinstance(ticket, Refused):
            plan.rejected.append(_rejected(number, ticket.rejection))
            continue
        known = seen.get(ticket.order_id)
        if known is not None:
            known.receipts.append(number)
            plan.duplicates += 1
            continue
        seen[ticket.order_id] = ticket
        _record(plan, batcher.add(ticket, 0.0), settings)
    _record(plan, batcher.flush(), settings)
    return plan


def _rejected(line: int, rejection: Rejection) -> RejectedLine:
    return RejectedLine(line, rejection.reason.value, rejection.detail, rejection.order_id)


def _record(plan: Plan, batches: list[Batch[int]], settings: Settings) -> None:
    for batch in batches:
        body = render_workflow(batch, settings=settings)
        summary = plan.classes[batch.size_class]
        summary.orders += len(batch.tickets)
        summary.workflows += 1
        summary.input_bytes += batch.input_bytes
        plan.workflows.append(
            PlannedWorkflow(
                name=workflow_name(
                    settings.workflow_name_prefix, batch.size_class, batch.order_ids
                ),
                size_class=batch.size_class,
                order_ids=batch.order_ids,
                lines=tuple(batch.receipts()),
                input_bytes=batch.input_bytes,
                body=body,
            )
        )
