"""Prometheus figures named in the design contract, on a registry per process (or per test)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dispatcher.core.order import Reason
from dispatcher.service.status import StatusBoard

PREFIX = "burst_dispatcher"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
AGE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.orders_received = Counter(
            f"{PREFIX}_orders_received", "Deliveries taken from Pub/Sub.", registry=r
        )
        self.redeliveries = Counter(
            f"{PREFIX}_redeliveries",
            "Deliveries with delivery_attempt > 1 (needs a dead-letter policy to be counted).",
            registry=r,
        )
        self.orders_submitted = Counter(
            f"{PREFIX}_orders_submitted",
            "Orders inside a created Workflow.",
            ["size_class"],
            registry=r,
        )
        self.orders_dead_lettered = Counter(
            f"{PREFIX}_orders_dead_lettered",
            "Deliveries sent to the dead-letter topic.",
            ["reason"],
            registry=r,
        )
        self.workflows_created = Counter(
            f"{PREFIX}_workflows_created",
            "Workflow create calls that succeeded (or 409).",
            ["size_class", "result"],
            registry=r,
        )
        self.live_workflows = Gauge(
            f"{PREFIX}_live_workflows",
            "Pending + running Workflows seen in the cluster.",
            ["size_class"],
            registry=r,
        )
        self.class_cap = Gauge(
            f"{PREFIX}_class_cap",
            "The class's cap on live Workflows now in force (follows live reloads).",
            ["size_class"],
            registry=r,
        )
        self.ready = Gauge(
            f"{PREFIX}_ready",
            "1 while this replica's /readyz answers ready, else 0 (evaluated at each scrape).",
            registry=r,
        )
        self.held_orders = Gauge(
            f"{PREFIX}_held_orders",
            "Orders held in this process (batching or admission).",
            ["size_class"],
            registry=r,
        )
        self.submit_latency = Histogram(
            f"{PREFIX}_submit_latency_seconds",
            "Duration of one Workflow create on a worker: the template check, the POST and "
            "its retries (not the time queued for a worker).",
            ["size_class"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.order_age = Histogram(
            f"{PREFIX}_order_age_at_submission_seconds",
            "From publish to Workflow created, per order.",
            ["size_class"],
            buckets=AGE_BUCKETS,
            registry=r,
        )

        self.create_failures = Counter(
            f"{PREFIX}_create_failures",
            "Workflow creates without success, by kind (unknown: retried under the same name; "
            "permanent and unexpected: dead-lettered).",
            ["kind"],
            registry=r,
        )
        self.decision_errors = Counter(
            f"{PREFIX}_decision_errors",
            "Exceptions nobody planned for while handling an event or carrying out a decision.",
            registry=r,
        )
        self.dead_letters_too_large = Counter(
            f"{PREFIX}_dead_letters_too_large",
            "Messages too large even for a compact dead letter, left to Pub/Sub's policy.",
            registry=r,
        )
        self._order_age_by_class: dict[str, Any] = {}  # per order: skip labels() look-ups
        self.ledger_failures = Counter(
            f"{PREFIX}_ledger_failures",
            "Dedupe-ledger writes that failed after their retries.",
            registry=r,
        )
        self.claims = Counter(
            f"{PREFIX}_claims",
            "Batches not created because of a claim: contested (another replica claims some "
            "of its orders, or made their Workflow) or failed (the claim could not be made).",
            ["outcome"],
            registry=r,
        )

        self.board: StatusBoard | None = None

    def received(self, count: int = 1, redelivered: int = 0) -> None:
        self.orders_received.inc(count)
        if redelivered:
            self.redeliveries.inc(redelivered)

    def dead_lettered(self, reason: Reason) -> None:
        self.orders_dead_lettered.labels(reason.value).inc()

    def created(self, size_class: str, orders: int, result: str, latency: float) -> None:
        self.workflows_created.labels(size_class, result).inc()
        self.orders_submitted.labels(size_class).inc(orders)
        self.submit_latency.labels(size_class).observe(latency)

    def order_settled(self, size_class: str | None, receipt: Any) -> None:
        """An order's deliveries were acked after its Workflow exists: its age, publish to ack."""
        published = getattr(receipt, "publish_time", None)
        if size_class is not None and published is not None and hasattr(published, "timestamp"):
            age = max(0.0, time.time() - published.timestamp())
            child = self._order_age_by_class.get(size_class)
            if child is None:  # labels() takes a lock and builds a key: once per class
                child = self._order_age_by_class[size_class] = self.order_age.labels(size_class)
            child.observe(age)

    def observe_engine(self, engine: Any) -> None:
        """On the loop thread, twice a second: the gauges, and the replica's ``/status``."""
        if self.board is not None:
            created = totals(self.workflows_created, "size_class")
            dead = sum(totals(self.orders_dead_lettered, "reason").values())
            self.board.update(engine, created=created, dead_lettered=int(dead))
        for size_class, held in engine.held_orders().items():
            self.held_orders.labels(size_class).set(held)
        limits = getattr(engine, "limits", None)
        if limits is not None:
            for size_class, cap in limits.class_caps.items():
                self.class_cap.labels(size_class).set(cap)
        live = getattr(engine, "live_by_class", None)
        if live is not None:
            for size_class, count in live().items():
                self.live_workflows.labels(size_class).set(count)


def totals(counter: Counter, label: str) -> dict[str, int]:
    """A counter's ``_total`` samples added up per value of ``label`` (for the status board)."""
    sums: dict[str, int] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels[label]
                sums[key] = sums.get(key, 0) + int(sample.value)
    return sums
