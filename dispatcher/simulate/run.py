"""The discrete-event loop: the service's real engine on a simulated clock.

Why the real engine: a simulation of the dispatcher that reimplemented batching, admission
and the rate limit would drift from the service the first time either changed. Here the
engine is :class:`dispatcher.core.engine.Engine` itself, fed deliveries and outcomes exactly
as the service's loop feeds it, on a :class:`~dispatcher.core.clock.FakeClock` that jumps from
event to event. This module carries out the engine's decisions (the executor's part): a
create lands after the API's latency, an ack frees Pub/Sub flow control, a re-park publishes
a fresh copy. What happens to a created Workflow is :mod:`dispatcher.simulate.cluster`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial

from dispatcher.core.admission import HoldReason
from dispatcher.core.decisions import Ack, Create, DeadLetter, Decision, Repark
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.core.outcomes import Created
from dispatcher.core.settings import Settings
from dispatcher.simulate.cluster import SimulatedCluster
from dispatcher.simulate.events import Agenda
from dispatcher.simulate.model import ClusterModel
from dispatcher.simulate.pubsub import Receipt, Upstream
from dispatcher.simulate.results import Results, Sample
from dispatcher.simulate.swarm import Swarm
from dispatcher.simulate.workflows import REPLICA, SimulatedWorkflows

NO_ATTRIBUTES: dict[str, str] = {}
#: A run stops here even if orders are left (a cap of 0, a paused class): they are reported as
#: not completed rather than simulated forever.
HORIZON_SECONDS = 366 * 86_400.0


class _Members:
    """One replica, settled from the start."""

    def members(self) -> list[str]:
        return [REPLICA]

    def settled(self) -> bool:
        return True


class Simulation:
    """One run: a swarm, a dispatcher configuration and a cluster model; :meth:`run` once."""

    def __init__(
        self,
        swarm: Swarm,
        *,
        settings: Settings,
        model: ClusterModel,
        seed: int = 1,
        horizon_seconds: float = HORIZON_SECONDS,
    ) -> None:
        self.horizon_seconds = horizon_seconds
        model = model.for_environment(settings.environment)
        self.swarm, self.settings, self.model = swarm, settings, model
        self.agenda = Agenda()
        self.clock = self.agenda.clock
        classes = [c.name for c in settings.classes]
        self.workflows = SimulatedWorkflows(classes, clock=self.clock)
        self.results = Results(classes=classes, pools=[p.name for p in model.pools])
        self.engine: Engine[Receipt] = Engine(
            settings,
            cluster=self.workflows,
            members=_Members(),
            clock=self.clock,
            config=EngineConfig(identity=REPLICA, max_in_flight=settings.service.create_workers),
        )
        self.cluster = SimulatedCluster(
            settings=settings,
            model=model,
            agenda=self.agenda,
            workflows=self.workflows,
            results=self.results,
            seed=seed,
            sample=self._sample,
        )
        self.upstream = Upstream(swarm, settings=settings, rate=model.pubsub_deliveries_per_second)
        self._sampled_at = -1e18
        #: Called after each run of events that ends at one the engine sees, or at a time it
        #: asked for: where limits can change (tests check invariants here).
        self.on_event: Callable[[Simulation], None] | None = None

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> Results:
        self.upstream.start()
        # Millions of short-lived objects (tickets, decisions, events), next to long-lived
        # ones (order ids, latencies): the cyclic collector's full passes over the latter
        # cost ~15 % of a large run; what exists now is frozen out of its view meanwhile.
        threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        try:
            while True:
                self._settle()
                when, until = self._next_time()
                if when is None or when > self.horizon_seconds:
                    break
                self.agenda.run_until(when, until=min(until, self.horizon_seconds))
                if self.on_event is not None:
                    self.on_event(self)
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
        return self._finish()

    def _settle(self) -> None:
        """Deliver what flow control allows and tick until the engine has nothing to add."""
        self._carry_out(self.engine.tick())
        while self._deliver():
            self._carry_out(self.engine.tick())

    def _next_time(self) -> tuple[float | None, float]:
        """When the next thing happens, and until when the agenda may run events on its own
        (the engine's deadline or the next delivery, whichever comes first)."""
        times = []
        # The service polls batches held at a cap every 50 ms; here a cap can only open at
        # an event (a Workflow finishing, an object deleted), after which the loop ticks
        # anyway, so only a wait for a rate token needs the poll.
        rate_held = HoldReason.RATE in self.engine.last_hold.values()
        deadline = self.engine.next_deadline(poll=rate_held)
        if deadline is not None:
            times.append(deadline)
        upstream = self.upstream.next_time(self.clock.now)
        if upstream is not None:
            times.append(upstream)
        until = min(times) if times else self.horizon_seconds
        upcoming = self.agenda.next_time()
        if upcoming is not None:
            times.append(upcoming)
        return (min(times) if times else None), until

    def _deliver(self) -> bool:
        """Hand the engine every message that is published and fits flow control."""
        delivered = 0
        receive, carry_out = self.engine.receive, self._carry_out
        for receipt in self.upstream.deliveries(self.clock.now):
            delivered += 1
            carry_out(receive(receipt, receipt[3], NO_ATTRIBUTES))
        return delivered > 0

    # -- the executor's part ---------------------------------------------------------------
    def _carry_out(self, decisions: list[Decision[Receipt]]) -> None:
        for decision in decisions:
            if isinstance(decision, Ack):
                self.upstream.settled(decision.receipts[0], len(decision.receipts))
                if decision.workflow is not None:
                    receipt = decision.receipts[0]
                    self.workflows.by_name[decision.workflow].orders.append(
                        (receipt[1], receipt[2], receipt[5])
                    )
                else:
                    self.results.duplicates += len(decision.receipts)
            elif isinstance(decision, Create):
                self.agenda.after(
                    self.model.controller.create_seconds, partial(self._created, decision.name)
                )
            elif isinstance(decision, DeadLetter):
                self.upstream.settled(decision.receipts[0], len(decision.receipts))
                self.results.dead_lettered += 1
            elif isinstance(decision, Repark):
                self.upstream.settled(decision.receipts[0], len(decision.receipts))
                self.upstream.repark(decision.receipts[0])
                self.results.reparked += 1

    def _created(self, name: str) -> None:
        self.agenda.notice()
        self._carry_out(self.engine.outcome(Created(name)))
        self.cluster.created(self.workflows.by_name[name])

    # -- results ---------------------------------------------------------------------------
    def _sample(self) -> None:
        """One point of the timeline, at most one per autoscaler scan interval."""
        now = self.clock.now
        if now - self._sampled_at < self.model.autoscaler.scan_seconds:
            return
        self._sampled_at = now
        self.results.timeline.append(
            Sample(
                at=now,
                backlog=self.upstream.backlog(now),
                live=self.workflows.live_total(),
                objects=self.workflows.objects,
                nodes={name: len(s.nodes) for name, s in self.cluster.pools.items()},
            )
        )

    def _finish(self) -> Results:
        self._sampled_at = -1e18
        self._sample()
        self.cluster.finish()
        results = self.results
        for name, state in self.cluster.pools.items():
            results.node_seconds[name] = state.node_seconds
            results.cost[name] = state.node_seconds / 3600 * state.pool.price()
            results.peak_nodes[name] = state.peak_nodes
        results.orders = self.upstream.published
        results.makespan = self.cluster.last_done
        results.workflows = dict(self.workflows.created)
        results.peak_live = dict(self.workflows.peak_live)
        results.peak_live_total = self.workflows.peak_live_total
        results.peak_objects = self.workflows.peak_objects
        results.simulated_seconds = self.clock.now
        return results


def simulate(swarm: Swarm, *, settings: Settings, model: ClusterModel, seed: int = 1) -> Results:
    return Simulation(swarm, settings=settings, model=model, seed=seed).run()
