"""Model-based test of the whole decision loop: engine + executor + loop handling + twins.

Hypothesis drives deliveries, Pub/Sub duplicates and redeliveries, create outcomes (created,
409, transient, ambiguous timeout-after-store, permanent, bug), publish failures, watch lag,
Workflows finishing and deleted by TTL, reloads, replicas joining, crashing (rollout) and
draining. After every step the invariants hold:

- no order in two Workflows (the dedupe window is longer than the run);
- a message is acked only once its order is in a Workflow, in the dead-letter topic, or in a
  fresh re-parked copy;
- no nack and no lapsed lease of a live or draining replica (backpressure and drain spend no
  delivery attempt); only a crash lets leases lapse;
- class caps are never exceeded, also while a replica joins (it sees only itself until it
  renews; peers see it at their next renewal) or after a rollout (old replica labels);
- a reload (a whole edited file, through the service's reload code) changes only live fields
  or nothing; every Workflow renders the file its replica started with (tests/model/reloads.py);
- no order is held past its lease without being re-parked;
- at the end, with faults off, every order is in a Workflow or a dead letter.

CI runs ``MODEL_EXAMPLES`` examples (see the README); runs that once failed are kept as
explicit cases in test_loop_cases.py.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from dispatcher.adapters.kube_memory import FAULTS
from dispatcher.core.limits import compare, limits_of
from dispatcher.logging import configure
from tests.model.broker import safe_to_ack
from tests.model.reloads import NON_LIVE_EDITS, edited, rendering_breach
from tests.model.world import World, model_settings

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "2000"))
SIZES = {"small": 1_000, "medium": 200 * 1024 * 1024, "large": 10 * 1024**3}


@pytest.fixture(autouse=True)
def quiet_logs() -> object:
    configure("json", "critical")  # thousands of steps: log lines would dominate the run
    yield
    configure("json", "info")


class LoopModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World(model_settings())
        self.world.broker.is_safe = lambda message: safe_to_ack(
            message, broker=self.world.broker, workflows=self.world.api.history
        )
        self.caps = {c.name: c.max_live_workflows for c in self.world.settings.classes}
        # A create admitted under a higher cap may land after a reload lowered it.
        self.admitted_under = dict(self.caps)
        self.cap_breaches: list[str] = []
        self.render_breaches: list[str] = []
        self.lapsed_by_drain = 0
        self.published: set[str] = set()
        self.world.start_replica()
        original_create = self.world.api.create

        def create(body: dict[str, Any]) -> object:
            before = len(self.world.api.history)
            breach = rendering_breach(body, started=self.world.settings)
            if breach is not None:
                self.render_breaches.append(breach)
            try:
                return original_create(body)
            finally:
                if len(self.world.api.history) > before:
                    stored = self.world.api.history[-1]
                    live = self.world.api.live_in_class(stored.size_class)
                    if live > self.admitted_under[stored.size_class]:
                        self.cap_breaches.append(f"{stored.size_class}: {live}")

        self.world.api.create = create  # type: ignore[method-assign]

    # -- Pub/Sub -------------------------------------------------------------------------
    @rule(n=st.integers(0, 9), size=st.sampled_from(sorted(SIZES)))
    def publish_order(self, n: int, size: str) -> None:
        order_id = f"o{n}-{size}"
        body = {"order_id": order_id, "input": {"uri": "gs://b/x", "size_bytes": SIZES[size]}}
        self.world.broker.upstream("intake", json.dumps(body).encode(), order_id=order_id)
        self.published.add(order_id)

    @rule()
    def publish_poison(self) -> None:
        self.world.broker.upstream("intake", b"{not json")

    @precondition(lambda self: self.world.broker.available() and self.world.replicas)
    @rule(which=st.integers(0, 1000), who=st.integers(0, 2))
    def deliver(self, which: int, who: int) -> None:
        messages = self.world.broker.available()
        replica = self.world.replicas[who % len(self.world.replicas)]
        replica.offer(self.world.broker.deliver(messages[which % len(messages)]))

    @precondition(lambda self: self.world.broker.available() and self.world.replicas)
    @rule(who=st.integers(0, 2))
    def deliver_backlog(self, who: int) -> None:
        """A backlog streams in: every waiting message, spread over the replicas in turn."""
        replicas = self.world.replicas
        for index, message in enumerate(self.world.broker.available()):
            replicas[(who + index) % len(replicas)].offer(self.world.broker.deliver(message))

    @precondition(lambda self: self.world.broker.leased() and self.world.replicas)
    @rule(which=st.integers(0, 1000), who=st.integers(0, 2))
    def duplicate_delivery(self, which: int, who: int) -> None:
        messages = self.world.broker.leased()
        replica = self.world.replicas[who % len(self.world.replicas)]
        replica.offer(self.world.broker.deliver(messages[which % len(messages)]))

    @rule(n=st.integers(1, 2))
    def publishes_fail(self, n: int) -> None:
        self.world.broker.fail_publishes = n

    @rule(n=st.integers(1, 2))
    def claims_fail(self, n: int) -> None:
        self.world.claim_store.failures = n

    # -- the Workflow API ----------------------------------------------------------------
    @precondition(lambda self: any(r.creates for r in self.world.replicas))
    @rule(who=st.integers(0, 2), fault=st.sampled_from(FAULTS))
    def run_create(self, who: int, fault: str) -> None:
        busy = [r for r in self.world.replicas if r.creates]
        busy[who % len(busy)].run_create(fault)

    @precondition(lambda self: self.world.replicas)
    @rule(who=st.integers(0, 2))
    def watch_catches_up(self, who: int) -> None:
        self.world.replicas[who % len(self.world.replicas)].view.sync()

    @precondition(lambda self: any(w.live for w in self.world.api.workflows.values()))
    @rule(which=st.integers(0, 1000))
    def workflow_finishes(self, which: int) -> None:
        live = [w for w in self.world.api.workflows.values() if w.live]
        self.world.api.finish(live[which % len(live)].name)

    @precondition(
        lambda self: any(not w.live and w.seen for w in self.world.api.workflows.values())
    )
    @rule(which=st.integers(0, 1000))
    def ttl_deletes(self, which: int) -> None:
        """Argo's TTL: long after any watch has seen the Workflow finish."""
        done = [w for w in self.world.api.workflows.values() if not w.live and w.seen]
        self.world.api.delete(done[which % len(done)].name)

    # -- time, limits, membership --------------------------------------------------------
    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 10.0, 30.0]))
    def time_passes(self, seconds: float) -> None:
        """Time goes by; every watch has caught up (its lag is milliseconds, not seconds)."""
        self.world.clock.advance(seconds)
        for replica in list(self.world.replicas):
            replica.view.sync()
            replica.step()

    @precondition(lambda self: self.world.replicas)
    @rule(
        cap=st.integers(0, 3),
        edit=st.sampled_from((None, *NON_LIVE_EDITS)),
        large=st.sampled_from(("active", "active", "paused", "draining")),
    )
    def reload(self, cap: int, edit: str | None, large: str = "active") -> None:
        """The ConfigMap changes: new caps, the large class paused, drained or resumed, and
        maybe a field that is not live."""
        running = self.world.config or self.world.settings
        new = edited(running, cap=cap, edit=edit, large=large)
        accepted = compare(running, new).accepted
        for replica in self.world.replicas:
            before = replica.engine.limits
            replica.reload.apply(new)
            assert replica.engine.limits == (limits_of(new) if accepted else before), edit
        if accepted:
            self.world.config = new
            self.caps = dict.fromkeys(self.caps, cap)
            self.admitted_under = {c: max(v, cap) for c, v in self.admitted_under.items()}

    @precondition(lambda self: len(self.world.replicas) < 3)
    @rule()
    def replica_joins(self) -> None:
        self.world.start_replica()

    @precondition(lambda self: self.world.replicas)
    @rule(who=st.integers(0, 2))
    def lease_renewed(self, who: int) -> None:
        self.world.renew(self.world.replicas[who % len(self.world.replicas)])

    @precondition(lambda self: self.world.replicas)
    @rule(who=st.integers(0, 2))
    def replica_crashes_and_is_replaced(self, who: int) -> None:
        replica = self.world.replicas[who % len(self.world.replicas)]
        self.world.remove(replica)  # its leases lapse: a crash may spend attempts
        self.world.start_replica()

    @precondition(lambda self: self.world.replicas)
    @rule(who=st.integers(0, 2))
    def replica_drains(self, who: int) -> None:
        replica = self.world.replicas[who % len(self.world.replicas)]
        replica.executor.carry_out(replica.engine.drain())
        replica.step()
        deadline = self.world.clock() + self.world.settings.service.drain_seconds
        while not replica.engine.settled_everything() and self.world.clock() < deadline:
            while replica.creates:
                replica.run_create("ok")
            self.world.clock.advance(1.0)
            replica.step()
        # Attempts spent by the drain, not counting messages whose dead letter or re-parked
        # copy an outage kept from being stored (those are left to Pub/Sub by design).
        broker = self.world.broker
        counted = [
            m for m in broker.messages.values() if m.message_id not in broker.publish_failed_for
        ]
        before = sum(m.attempts for m in counted)
        self.world.remove(replica)
        self.lapsed_by_drain += sum(m.attempts for m in counted) - before
        if not self.world.replicas:
            self.world.start_replica()

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def no_order_in_two_workflows(self) -> None:
        """Within the dedupe window, whatever the faults, restarts, lags and replicas holding
        copies of one order at the same time (the claims decide between them)."""
        seen: dict[str, str] = {}
        for workflow in self.world.api.history:
            for order_id in workflow.order_ids:
                first = seen.get(order_id)
                assert first is None, f"{order_id} in {first} and {workflow.name}"
                seen[order_id] = workflow.name

    @invariant()
    def acks_only_when_safe(self) -> None:
        assert self.world.broker.acked_unsafe == []

    @invariant()
    def backpressure_and_drain_spend_no_attempt(self) -> None:
        assert self.world.broker.nacks == 0
        assert self.lapsed_by_drain == 0

    @invariant()
    def caps_hold(self) -> None:
        assert self.cap_breaches == []
        assert self.render_breaches == []
        if not any(r.engine.in_flight() for r in self.world.replicas):
            self.admitted_under = dict(self.caps)

    @invariant()
    def nothing_held_past_its_lease(self) -> None:
        limit = self.world.settings.pubsub.max_lease_seconds
        now = self.world.clock()
        for replica in self.world.replicas:
            in_flight = {
                t.order_id for f in replica.engine._in_flight.values() for t in f.batch.tickets
            }
            for order_id, ticket in replica.engine._tickets.items():
                if order_id not in in_flight:
                    assert now - ticket.received_at <= limit, f"{order_id} held too long"

    def teardown(self) -> None:
        """Faults off: drain everything through; no order may be lost."""
        world = self.world
        world.broker.fail_publishes = 0
        world.claim_store.failures = 0
        self.reload(3, None)
        for _ in range(200):
            for workflow in list(world.api.workflows.values()):
                world.api.finish(workflow.name)
            for replica in list(world.replicas):
                world.renew(replica)
                replica.view.sync()
                while replica.creates:
                    replica.run_create("ok")
            quiet = not world.broker.available() and not any(r.creates for r in world.replicas)
            if quiet and all(
                r.engine.idle() and r.engine.settled_everything() for r in world.replicas
            ):
                break
            for message in world.broker.available():
                world.replicas[0].offer(world.broker.deliver(message))
            world.clock.advance(10.0)
            for replica in world.replicas:
                replica.step()
        in_workflows = {o for w in world.api.history for o in w.order_ids}
        dead = {d.order_id for d in world.broker.dead_letters}
        lost = self.published - in_workflows - dead
        assert not lost, f"orders lost: {sorted(lost)}"
        self.no_order_in_two_workflows()
        self.acks_only_when_safe()


LoopModel.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLoopModel = LoopModel.TestCase
