"""In-memory twin of the Kubernetes side: a Workflow API with faults, and lagging views of it.

The real adapters (``kube.py`` creating, ``cluster_view.py`` watching) talk to an API server;
these twins let the whole loop run synchronously in a unit test. A create can be told to fail
the ways the real one does: a definite refusal, a transient error before anything was stored,
an ambiguous one (stored, then the client saw a timeout), or a bug. A view sees the API only
when told to catch up, as a watch does some milliseconds later.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dispatcher.adapters.sinks import CreateResult
from dispatcher.core.order import Reason
from dispatcher.core.render import ANNOTATION_ORDER_IDS, LABEL_CLASS, LABEL_REPLICA
from dispatcher.errors import PermanentError, TransientError

FAULTS = ("ok", "transient", "ambiguous", "permanent", "bug")


@dataclass
class StoredWorkflow:
    name: str
    size_class: str
    replica: str
    order_ids: tuple[str, ...]
    live: bool = True
    seen: bool = False  # some watch has reported it (Argo's TTL is far longer than that)


@dataclass
class MemoryWorkflowApi:
    """Workflows by name; ``history`` keeps every Workflow ever stored (deleted ones too)."""

    workflows: dict[str, StoredWorkflow] = field(default_factory=dict)
    history: list[StoredWorkflow] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # consumed one per create

    def create(self, body: dict[str, Any]) -> CreateResult:
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "transient":
            raise TransientError("HTTP 503: the server is unavailable")
        if fault == "permanent":
            raise PermanentError("HTTP 422: refused", reason=Reason.REJECTED_BY_API)
        if fault == "bug":
            raise KeyError("a bug")
        metadata = body["metadata"]
        name = metadata["name"]
        if name in self.workflows:
            result = CreateResult.EXISTS
        else:
            stored = StoredWorkflow(
                name,
                metadata["labels"][LABEL_CLASS],
                metadata["labels"].get(LABEL_REPLICA, ""),
                tuple(json.loads(metadata["annotations"][ANNOTATION_ORDER_IDS])),
            )
            self.workflows[name] = stored
            self.history.append(stored)
            result = CreateResult.CREATED
        if fault == "ambiguous":
            raise TransientError("read timed out (the Workflow was stored)")
        return result

    def finish(self, name: str) -> None:
        if name in self.workflows:
            self.workflows[name].live = False

    def delete(self, name: str) -> None:
        self.workflows.pop(name, None)

    def live_in_class(self, size_class: str) -> int:
        return sum(1 for w in self.workflows.values() if w.live and w.size_class == size_class)


class MemoryWorkflowView:
    """A ClusterState that sees ``api`` as of its last ``sync()`` plus what it created itself."""

    def __init__(self, api: MemoryWorkflowApi, *, ledger: Any = None) -> None:
        self._api = api
        self._ledger = ledger
        self._seen: dict[str, StoredWorkflow] = {}
        self._orders: set[str] = set()

    def sync(self) -> None:
        """The watch catches up; like the real view, it puts what it sees into the ledger."""
        for workflow in self._api.workflows.values():
            workflow.seen = True
        self._seen = {n: StoredWorkflow(**vars(w)) for n, w in self._api.workflows.items()}
        self._orders = {o for w in self._seen.values() for o in w.order_ids}
        if self._ledger is not None:
            missing = [o for o in self._orders if not self._ledger.contains(o)]
            if missing:
                self._ledger.record(missing, lambda _error: None)

    def contains(self, order_id: str) -> bool:
        if order_id in self._orders:
            return True
        return self._ledger is not None and bool(self._ledger.contains(order_id))

    def live_by_replica(self, size_class: str) -> dict[str, int]:
        return dict(
            Counter(w.replica for w in self._seen.values() if w.live and w.size_class == size_class)
        )

    def objects_total(self) -> int:
        return len(self._seen)

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None:
        stored = self._api.workflows.get(name)
        if stored is not None and name not in self._seen:
            self._seen[name] = StoredWorkflow(**vars(stored))
            self._orders.update(order_ids)
