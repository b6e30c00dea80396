"""The Workflows the simulated API server holds: the engine's view of the cluster.

This is the :class:`dispatcher.core.ports.ClusterState` the real engine asks before every
admission, kept exactly as the service's Workflow watch keeps it: a Workflow is live from its
create until its last order finishes, and an object until Argo's TTL deletes it. Peaks are
recorded here, where counts go up, so a report (and the tests) see the highest values the
engine ever let happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.core.clock import Clock
from dispatcher.simulate.swarm import StepFlags

REPLICA = "sim"


@dataclass(eq=False, slots=True)
class Workflow:
    name: str
    size_class: str
    created_at: float
    #: (arrival time, input bytes, step flags) of each order, as the acks of its create name
    #: them.
    orders: list[tuple[float, int, StepFlags]] = field(default_factory=list)
    started: int = 0  # orders whose first step has been asked for (Argo's DAG, in order)
    unfinished: int = 0  # orders started and not yet through their last step


class SimulatedWorkflows:
    """Live Workflows per class, objects in the namespace, and order ids inside them."""

    def __init__(self, classes: list[str], *, clock: Clock) -> None:
        self._clock = clock
        self.live: dict[str, int] = dict.fromkeys(classes, 0)
        self.peak_live: dict[str, int] = dict.fromkeys(classes, 0)
        self.objects = 0
        self.peak_objects = 0
        self.peak_live_total = 0
        self.created: dict[str, int] = dict.fromkeys(classes, 0)
        self.by_name: dict[str, Workflow] = {}
        self._order_ids: set[str] = set()

    # -- ClusterState ----------------------------------------------------------------------
    def contains(self, order_id: str) -> bool:
        return order_id in self._order_ids

    def live_by_replica(self, size_class: str) -> Mapping[str, int]:
        return {REPLICA: self.live[size_class]}

    def objects_total(self) -> int:
        return self.objects

    def record_created(self, name: str, size_class: str, order_ids: tuple[str, ...]) -> None:
        workflow = Workflow(name, size_class, self._clock())
        self.by_name[name] = workflow
        self.created[size_class] += 1
        self._order_ids.update(order_ids)
        self.live[size_class] += 1
        self.objects += 1
        self.peak_live[size_class] = max(self.peak_live[size_class], self.live[size_class])
        self.peak_live_total = max(self.peak_live_total, sum(self.live.values()))
        self.peak_objects = max(self.peak_objects, self.objects)

    # -- the simulation's side -------------------------------------------------------------
    def finished(self, workflow: Workflow) -> None:
        self.live[workflow.size_class] -= 1
        self.by_name.pop(workflow.name, None)

    def deleted(self) -> None:
        self.objects -= 1

    def live_total(self) -> int:
        return sum(self.live.values())
