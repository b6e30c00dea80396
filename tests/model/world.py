"""The world the model-based test drives: Pub/Sub, the Workflow API and replicas, in memory.

Each replica is the real engine, the real executor and the real event handling of the loop
(``dispatcher.runner.handle``), wired to in-memory twins instead of servers, and run one step
at a time so hypothesis can interleave deliveries, outcomes, faults and membership changes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dispatcher.adapters.claims_memory import MemoryClaims, MemoryClaimStore
from dispatcher.adapters.kube_memory import MemoryWorkflowApi, MemoryWorkflowView
from dispatcher.adapters.ledger_memory import MemoryLedger, MemoryLedgerStore
from dispatcher.config import Settings, load_settings
from dispatcher.core.clock import FakeClock
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.core.limits import LimitsChanged, limits_of
from dispatcher.service.executor import Executor
from dispatcher.service.loop import guarded, handle
from dispatcher.service.metrics import Metrics

DLQ = "projects/p/topics/orders-dead-letter"
INTAKE = "projects/p/topics/orders"


@dataclass
class Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    order_id: str | None
    attempts: int = 0
    acked: bool = False
    leases: set[int] = field(default_factory=set)


class Delivery:
    """One delivery of a message (its own ack id); acks of a lapsed lease are ignored."""

    def __init__(self, broker: Broker, message: Message, lease: int) -> None:
        self._broker, self._message, self._lease = broker, message, lease
        self.data = message.data
        self.attributes = dict(message.attributes)
        self.message_id = message.message_id
        self.publish_time = None
        self.delivery_attempt = message.attempts + 1

    def ack(self) -> None:
        self._broker.ack(self._message, self._lease)

    def nack(self) -> None:
        self._broker.nacks += 1
        self._broker.lapse(self._message, self._lease)


class Broker:
    """A topic with one subscription, the dead-letter topic, and a publish port."""

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.dead_letters: list[Message] = []
        self.acked_unsafe: list[str] = []
        self.nacks = 0
        self.fail_publishes = 0
        self._ids = itertools.count(1)
        self.is_safe: Callable[[Message], bool] = lambda _m: True

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        """The dispatcher's publish port (dead letters, re-parked copies); may fail."""
        future: Future[str] = Future()
        if self.fail_publishes:
            self.fail_publishes -= 1
            future.set_exception(RuntimeError("publish unavailable"))
            return future
        future.set_result(self.upstream(topic, data, **attributes))
        return future

    def upstream(self, topic: str, data: bytes, **attributes: str) -> str:
        """A message as an upstream team publishes it (never fails in the model)."""
        message_id = f"m{next(self._ids)}"
        message = Message(message_id, data, attributes, _order_id(data))
        if topic == DLQ:
            self.dead_letters.append(message)
        else:
            self.messages[message_id] = message
        return message_id

    def available(self) -> list[Message]:
        return [m for m in self.messages.values() if not m.acked and not m.leases]

    def leased(self) -> list[Message]:
        return [m for m in self.messages.values() if not m.acked and m.leases]

    def deliver(self, message: Message) -> Delivery:
        lease = next(self._ids)
        message.leases.add(lease)
        return Delivery(self, message, lease)

    def ack(self, message: Message, lease: int) -> None:
        if lease not in message.leases or message.acked:
            return  # Pub/Sub ignores an ack for a lapsed lease
        if not self.is_safe(message):
            self.acked_unsafe.append(message.message_id)
        message.acked = True
        message.leases.clear()

    def lapse(self, message: Message, lease: int) -> None:
        """A lease ends without an ack (nack, crash): redelivered later, one attempt spent."""
        if lease in message.leases:
            message.leases.discard(lease)
            if not message.leases:
                message.attempts += 1


def _order_id(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value.get("order_id") if isinstance(value, dict) else None


class ReplicaMembers:
    def __init__(self, identity: str, members: list[str], *, settled: bool) -> None:
        self.identity = identity
        self.current = sorted(members)
        self.is_settled = settled

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
        members: list[str],
        settled: bool,
    ) -> None:
        self.identity = identity
        self.world = world
        self.metrics = Metrics()
        # Its own ledger over the shared durable store: what it held only locally dies with it.
        self.ledger = MemoryLedger(store=world.ledger_store, clock=world.clock)
        self.view = MemoryWorkflowView(world.api, ledger=self.ledger)
        self.view.sync()
        self.members = ReplicaMembers(identity, members, settled=settled)
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

    def limits_changed(self, event: LimitsChanged) -> None:
        self.step([event])


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
    limits: LimitsChanged | None = None  # the ConfigMap's current limits, for new replicas

    def start_replica(self) -> Replica:
        identity = f"r{next(self.names)}"
        peers = [r.identity for r in self.replicas]
        replica = Replica(
            identity,
            settings=self.settings,
            world=self,
            members=[*peers, identity],
            settled=not peers,
        )
        replica.waiting_for = set(peers)
        if self.limits is not None:
            replica.limits_changed(self.limits)
        self.replicas.append(replica)
        return replica

    def renew(self, replica: Replica) -> None:
        """A Lease renewal: the replica sees the current members; joiners wait for everyone.

        The timing the service relies on (docs/architecture.md, "Several replicas"): a
        create lands and the watches report it well within one renewal interval (10 s), so a
        peer's renewal counts for a joiner only once the creates it admitted have landed.
        """
        replica.members.current = sorted(r.identity for r in self.replicas)
        if replica.engine.in_flight():
            return
        for other in self.replicas:
            other.waiting_for.discard(replica.identity)
            if not other.waiting_for and not other.members.is_settled:
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


def model_settings() -> Settings:
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


def with_caps(settings: Settings, cap: int) -> LimitsChanged:
    limits = limits_of(settings)
    return LimitsChanged(
        type(limits)(
            workflows_per_second=limits.workflows_per_second,
            burst=limits.burst,
            max_workflow_objects=limits.max_workflow_objects,
            class_caps=dict.fromkeys(limits.class_caps, cap),
        )
    )
