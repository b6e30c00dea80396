"""The simulation: deterministic for a seed, never past a limit, the service's own core."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dispatcher.service.assembly as service_assembly
import dispatcher.service.loop as service_loop
from dispatcher.config import Settings
from dispatcher.core import batching, engine, intake
from dispatcher.simulate.model import MODELS_DIR, ClusterModel, load_model
from dispatcher.simulate.run import Simulation, simulate
from dispatcher.simulate.swarm import parse_swarm
from tests.simulate.conftest import with_attempt_preemption, with_preemption


@pytest.mark.parametrize("per", ["node-hour", "attempt"])
def test_two_runs_with_one_seed_give_the_same_document(
    dev_settings: Settings, gke: ClusterModel, per: str
) -> None:
    model = with_preemption(gke, 2.0) if per == "node-hour" else with_attempt_preemption(gke, 0.1)
    swarm = parse_swarm("gen:ramp:n=400,seconds=300,seed=3")
    first = simulate(swarm, settings=dev_settings, model=model, seed=5).to_document()
    second = simulate(swarm, settings=dev_settings, model=model, seed=5).to_document()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["preemptions"] > 0  # the seeded draws were exercised
    other = simulate(swarm, settings=dev_settings, model=model, seed=6).to_document()
    assert other != first  # and the seed is what decides them


def test_every_order_is_accounted_for(dev_settings: Settings, gke: ClusterModel) -> None:
    swarm = parse_swarm("gen:burst:n=300")
    doc = simulate(swarm, settings=dev_settings, model=gke).to_document()
    assert doc["orders"] == 300
    assert doc["completed"] + doc["dead_lettered"] == 300
    assert doc["makespan_seconds"] > 0
    assert doc["latency_seconds"]["p50"] <= doc["latency_seconds"]["p99"]
    assert doc["node_hours"] > 0
    assert doc["cost_usd"] > 0


def test_the_simulator_drives_the_engine_the_service_runs(
    dev_settings: Settings, gke: ClusterModel
) -> None:
    simulation = Simulation(parse_swarm("gen:burst:n=1"), settings=dev_settings, model=gke)
    assert type(simulation.engine) is service_assembly.Engine is service_loop.Engine
    assert type(simulation.engine) is engine.Engine
    # Intake and batching are the core's own, not copies inside the simulator.
    assert type(simulation.engine._intake) is intake.Intake
    assert type(simulation.engine._batcher) is batching.Batcher


CAP_CONFIGS = st.fixed_dictionaries(
    {
        "small": st.integers(1, 6),
        "medium": st.integers(1, 4),
        "large": st.integers(1, 3),
        "rate": st.sampled_from([0.5, 2.0, 20.0]),
        "objects": st.integers(3, 40),
        "orders": st.integers(1, 250),
        "curve": st.sampled_from(["burst", "ramp:n={n},seconds=120", "steady:n={n},rate=5"]),
        "seed": st.integers(0, 1000),
        "preempt": st.sampled_from(["none", "node-hour", "attempt"]),
        "workflows_per_second": st.sampled_from([0.2, 5.0]),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=CAP_CONFIGS)
def test_simulated_limits_are_never_exceeded(
    dev_settings: Settings, gke: ClusterModel, case: dict[str, object]
) -> None:
    caps = {"small": case["small"], "medium": case["medium"], "large": case["large"]}
    classes = [
        c.model_copy(update={"max_live_workflows": caps[c.name]}) for c in dev_settings.classes
    ]
    limits = dev_settings.limits.model_copy(
        update={"workflows_per_second": case["rate"], "max_workflow_objects": case["objects"]}
    )
    config = dev_settings.model_copy(update={"classes": classes, "limits": limits})
    controller = gke.controller.model_copy(
        update={
            "workflows_per_second": case["workflows_per_second"],
            "ttl_seconds_after_success": 60,
        }
    )
    spot = {"none": gke, "node-hour": with_preemption(gke, 3.0)}.get(
        str(case["preempt"]), with_attempt_preemption(gke, 0.3)
    )
    model = spot.model_copy(update={"controller": controller})
    n = case["orders"]
    curve = str(case["curve"]).format(n=n)
    spec = f"gen:{curve}" if "n=" in curve else f"gen:{curve}:n={n}"
    simulation = Simulation(
        parse_swarm(f"{spec},seed={case['seed']}"),
        settings=config,
        model=model,
        seed=int(case["seed"]),
    )
    breaches: list[str] = []

    def check(sim: Simulation) -> None:
        for name, live in sim.workflows.live.items():
            if live > caps[name]:
                breaches.append(f"{name}: {live} live at {sim.clock.now}")
        if sim.workflows.objects > config.limits.max_workflow_objects:
            breaches.append(f"objects: {sim.workflows.objects} at {sim.clock.now}")
        for state in sim.cluster.pools.values():
            if len(state.nodes) > state.pool.max_nodes:
                breaches.append(f"{state.pool.name}: {len(state.nodes)} nodes")
            for node in state.nodes:
                if node.cpu_free < 0 or node.memory_free < 0:
                    breaches.append(f"{state.pool.name}: a node overcommitted at {sim.clock.now}")

    simulation.on_event = check
    results = simulation.run()
    assert not breaches, breaches[:3]
    for name, cap in caps.items():
        assert results.peak_live[name] <= cap
    assert results.peak_objects <= config.limits.max_workflow_objects
    assert len(results.latencies) + results.dead_lettered == n


def test_direct_routing_re_parks_more_than_class_topics(
    dev_settings: Settings, gke: ClusterModel
) -> None:
    """One shared flow-control window fills with large orders held behind a cap of one; a
    subscription per class holds only its hold budget (4 large orders), so few wait past
    their lease."""
    swarm = parse_swarm("gen:burst:n=2000")
    direct = simulate(swarm, settings=dev_settings, model=gke)
    pubsub = dev_settings.pubsub.model_copy(update={"routing": "class_topics"})
    routed = simulate(swarm, settings=dev_settings.model_copy(update={"pubsub": pubsub}), model=gke)
    assert direct.reparked > 0
    assert 0 <= routed.reparked < direct.reparked / 3
    assert len(direct.latencies) == len(routed.latencies) == 2000


@pytest.mark.parametrize("name", sorted(p.stem for p in MODELS_DIR.glob("*.yaml")))
def test_every_shipped_model_runs_the_dev_configuration(name: str, dev_settings: Settings) -> None:
    results = simulate(
        parse_swarm("gen:burst:n=100"), settings=dev_settings, model=load_model(name)
    )
    assert len(results.latencies) == 100 and results.makespan > 0


def test_orders_held_back_for_good_end_the_run_at_its_horizon(
    dev_settings: Settings, gke: ClusterModel
) -> None:
    """A cap of 0 admits nothing: the run stops at its horizon and says what is left."""
    classes = [
        c.model_copy(update={"max_live_workflows": 0}) if c.name == "large" else c
        for c in dev_settings.classes
    ]
    config = dev_settings.model_copy(update={"classes": classes})
    simulation = Simulation(
        parse_swarm("gen:burst:n=300"), settings=config, model=gke, horizon_seconds=86_400
    )
    doc = simulation.run().to_document()
    assert doc["not_completed"] > 0
    assert doc["completed"] + doc["dead_lettered"] + doc["not_completed"] == 300
    assert doc["workflows"]["large"] == 0


def test_a_paused_class_stays_upstream(dev_settings: Settings, gke: ClusterModel) -> None:
    pubsub = dev_settings.pubsub.model_copy(update={"routing": "class_topics"})
    classes = [
        c.model_copy(update={"state": "paused"}) if c.name == "medium" else c
        for c in dev_settings.classes
    ]
    config = dev_settings.model_copy(update={"pubsub": pubsub, "classes": classes})
    simulation = Simulation(parse_swarm("gen:burst:n=300"), settings=config, model=gke)
    doc = simulation.run().to_document()
    assert doc["workflows"]["medium"] == 0 and doc["not_completed"] > 0
    assert simulation.upstream.held["medium"] == 0  # never delivered, so never re-parked
