"""The world the model-based test drives: Pub/Sub, the Workflow API and replicas, in memory.

Each replica is the real engine, the real executor and the real event handling of the loop
(``dispatcher.runner.handle``), wired to in-memory twins instead of servers, and run one step
at a time so hypothesis can interleave deliveries, outcomes, faults and membership changes.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dispatcher.adapters.claims_memory import MemoryClaims, MemoryClaimStore
from dispatcher.adapters.kube_memory import MemoryWorkflowApi, MemoryWorkflowView
from dispatcher.adapters.ledger_memory import MemoryLedger, MemoryLedgerStore
from dispatcher.config import Settings, load_settings
from dispatcher.core.clock import FakeClock
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.service.executor import Executor
from dispatcher.service.loop import guarded, handle
from dispatcher.service.metrics import Metrics
from tests.model.broker import DLQ, INTAKE, Broker, Delivery
from tests.model.reloads import ReloadTarget


class ReplicaMembers:
    """One replica's own view of the membership: it changes only when this replica renews.

    As the Lease-backed membership does, a replica starts seeing only itself; peers see it at
    their next renewal (issue 8, defect 8).
    """

    def __init__(self, identity: str, *, settled: bool) -> None:
        self.identity = identity
        self.current = [identity]
        self.is_settled = settled
        self.renewed = settled  # a joiner has not renewed since it joined

    def members(self) -> list[str]:
        return self.current

    def settled(self) -> bool:
        return self.is_settled


class Replica:
    """One dispatcher process: engine + executor + twins, stepped by hand."""

    def __init__(
        self,
        identity: str,
        *,
        settings: Settings,
        world: World,
        settled: bool,
    ) -> None:
        self.identity = identity
        self.world = world
        self.metrics = Metrics()
        # Its own ledger over the shared durable store: what it held only locally dies with it.
        self.ledger = MemoryLedger(store=world.ledger_store, clock=world.clock)
        self.view = MemoryWorkflowView(world.api, ledger=self.ledger)
        self.view.sync()
        self.members = ReplicaMembers(identity, settled=settled)
        self.waiting_for: set[str] = set()  # peers that must renew before this one settles
        self.deliveries: list[Delivery] = []
        self.creates: list[Callable[[], None]] = []
        self.events: list[object] = []
        self.engine: Engine[Any] = Engine(
            settings,
            cluster=self.view,
            members=self.members,
            clock=world.clock,
            config=EngineConfig(identity=identity, max_in_flight=3),
            message_id=lambda d: str(d.message_id),
        )
        self.executor: Executor[Any] = Executor(
            sink=world.api,
            publisher=world.broker,
            ledger=self.ledger,
            dead_letter_topic=DLQ,
            repark_topic=lambda _c: INTAKE,
            post=self.events.append,
            submit=self._submit,
            metrics=self.metrics,
            clock=world.clock,
            claims=MemoryClaims(
                store=world.claim_store,
                identity=identity,
                hold_seconds=settings.dedupe.claim_hold_seconds,
                clock=world.clock,
            ),
            contains=self.view.contains,
        )
        self.draining = False
        self.reload = ReloadTarget(settings, on_change=lambda event: self.step([event]))

    def _submit(self, create: Callable[[], None]) -> None:
        """A create (claim, then POST) leaves for the API; the model decides when it runs."""
        self.creates.append(create)

    def offer(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.step([delivery])

    def step(self, events: list[object] | None = None) -> None:
        """One turn of the loop: the events, then a tick, then the executor (as Runner)."""
        pending = list(events or [])
        while True:
            pending.extend(self.events)
            self.events.clear()
            decisions = []
            for event in pending:
                decisions.extend(handle(self.engine, self.executor, event, self.metrics))
            decisions.extend(guarded(self.metrics, "tick", self.engine.tick))
            self.executor.carry_out(decisions)
            pending = []
            if not self.events:
                return

    def run_create(self, fault: str) -> None:
        self.world.api.faults = [fault]
        self.creates.pop(0)()
        self.world.api.faults = []
        self.step()


@dataclass
class World:
    settings: Settings
    clock: FakeClock = field(default_factory=FakeClock)
    broker: Broker = field(default_factory=Broker)
    api: MemoryWorkflowApi = field(default_factory=MemoryWorkflowApi)
    ledger_store: MemoryLedgerStore = field(default_factory=MemoryLedgerStore)
    claim_store: MemoryClaimStore = field(default_factory=MemoryClaimStore)
    replicas: list[Replica] = field(default_factory=list)
    names: Any = field(default_factory=lambda: itertools.count(1))
    # The ConfigMap's content as last accepted (a refused edit is reverted): new replicas
    # start from it, so every replica renders what ``settings`` renders.
    config: Settings | None = None

    def start_replica(self) -> Replica:
        identity = f"r{next(self.names)}"
        peers = [r.identity for r in self.replicas]
        replica = Replica(
            identity, settings=self.config or self.settings, world=self, settled=not peers
        )
        replica.waiting_for = set(peers)
        self.replicas.append(replica)
        return replica

    def renew(self, replica: Replica) -> None:
        """A Lease renewal: the replica sees the current members; joiners wait for everyone.

        The timing the service relies on (docs/architecture.md, "Several replicas"): a
        create lands and the watches report it well within one renewal interval (10 s), so a
        peer's renewal counts for a joiner only once the creates it admitted have landed.
        """
        replica.members.current = sorted(r.identity for r in self.replicas)
        replica.members.renewed = True
        if replica.engine.in_flight():
            return
        for other in self.replicas:
            other.waiting_for.discard(replica.identity)
            ready = not other.waiting_for and other.members.renewed
            if ready and not other.members.is_settled:
                other.view.sync()
                other.members.is_settled = True

    def remove(self, replica: Replica) -> None:
        """The replica is gone (crash or end of drain): what it held lapses, peers see it."""
        self.replicas.remove(replica)
        for delivery in replica.deliveries:
            self.broker.lapse(delivery._message, delivery._lease)
        for other in self.replicas:
            other.view.sync()  # a Lease expires long after the watch has caught up
            other.waiting_for.discard(replica.identity)
            self.renew(other)


@functools.cache
def model_settings() -> Settings:
    """The default file with small limits; parsed once (settings are immutable values)."""
    base = load_settings(environ={})
    classes = [
        c.model_copy(
            update={
                "max_live_workflows": 2,
                "max_linger_seconds": min(2, c.max_linger_seconds),
                "max_orders_per_workflow": min(3, c.max_orders_per_workflow),
            }
        )
        for c in base.classes
    ]
    return base.model_copy(
        update={
            "classes": classes,
            "pubsub": base.pubsub.model_copy(update={"max_lease_seconds": 60}),
            "limits": base.limits.model_copy(update={"workflows_per_second": 2.0, "burst": 4}),
        }
    )
