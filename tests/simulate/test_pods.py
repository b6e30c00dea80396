"""One pod per step: the DAG the template runs, the steps an order's flags turn on, steps of
live Workflows interleaving on their pool, and spot preemption per step attempt."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dispatcher.config import Settings, load_settings
from dispatcher.simulate.model import ClusterModel, PipelineStep, Pool, Prices, load_model
from dispatcher.simulate.run import Simulation, simulate
from dispatcher.simulate.swarm import parse_swarm
from tests.simulate.conftest import with_attempt_preemption

TEMPLATE = Path(__file__).resolve().parents[2] / "workflow_templates" / "order-pipeline.yaml"
STEP = 10.0


def test_the_default_pipeline_is_the_shipped_templates_order_dag() -> None:
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    order = next(t for t in template["spec"]["templates"] if t["name"] == "order")
    shipped = [
        PipelineStep(name=task["name"], optional="when" in task) for task in order["dag"]["tasks"]
    ]
    assert _one_node_model([]).pipeline == shipped


def _one_node(settings: Settings) -> ClusterModel:
    """Every class's pool is one fixed node; a step pod runs STEP seconds and nothing else
    takes time, so latencies count steps."""
    model = _one_node_model(
        sorted(
            {c.node_pool for c in settings.classes}
            | {c.fallback_node_pool for c in settings.classes if c.fallback_node_pool}
        )
    )
    steps = {c.name: {"base_seconds": STEP, "seconds_per_gib": 0} for c in settings.classes}
    return ClusterModel.model_validate(model.model_dump() | {"steps": steps})


def _one_node_model(names: list[str]) -> ClusterModel:
    pools = [
        Pool(
            name=name,
            cpu=7.92,
            memory_gib=28.3,
            prices=Prices(on_demand=0.3, spot=0.1),
            spot=name.endswith("spot"),
            min_nodes=1,
            max_nodes=1,
            scale_up_seconds=0,
        )
        for name in names or ["pool"]
    ]
    return ClusterModel.model_validate(
        {
            "name": "one-node",
            "pools": [p.model_dump() for p in pools],
            "controller": {
                "create_seconds": 0,
                "workflows_per_second": 1000,
                "pod_start_seconds": 0,
                "step_gap_seconds": 0,
            },
            "steps": {},
            "retry_backoff_seconds": 5,
        }
    )


def _order(order_id: str, steps: dict[str, bool]) -> str:
    return json.dumps(
        {"order_id": order_id, "input": {"uri": "gs://b/o", "size_bytes": 1000}, "steps": steps}
    )


def test_an_order_runs_one_pod_per_step_its_flags_turn_on(
    dev_settings: Settings, tmp_path: Path
) -> None:
    """config/dev.yaml: enrich off, qc on by default. Four steps always, plus the optional
    ones that run: 5 pods by default, 6 with enrich, 4 with qc turned off."""
    model = _one_node(dev_settings)
    latency = {}
    for name, steps in {"default": {}, "enrich": {"enrich": True}, "no-qc": {"qc": False}}.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(_order(f"o-{name}", steps) + "\n")
        results = simulate(parse_swarm(str(path)), settings=dev_settings, model=model)
        latency[name] = results.latency(0.5)
    linger = latency["default"] - 5 * STEP  # the batch's wait before its create: the same
    assert linger >= 0
    assert latency["enrich"] == linger + 6 * STEP
    assert latency["no-qc"] == linger + 4 * STEP


def test_steps_of_live_workflows_interleave_so_workflows_end_together(
    dev_settings: Settings,
) -> None:
    """Four Workflows of 50 small orders share one node that runs 15 small pods at once. Each
    step goes back to the end of the pool's queue, so no Workflow runs ahead: they all end in
    the last part of the run, as on the cluster (ref-1000: p50 at 88 % of the makespan)."""
    small = next(c for c in dev_settings.classes if c.name == "small")
    classes = [small.model_copy(update={"max_live_workflows": 4})]
    config = dev_settings.model_copy(update={"classes": classes})
    results = simulate(
        parse_swarm("gen:burst:n=200,seed=2"), settings=config, model=_one_node(config)
    )
    small_orders = len(results.latencies)
    assert small_orders > 150
    first_workflow_done = min(results.workflow_latencies)
    assert first_workflow_done > 0.75 * results.makespan
    assert results.latency(0.5) > 0.6 * results.makespan
    # Newest first (the pod just created wins freed room): an order once started runs
    # through, and Workflows end one after another instead.
    newest = _one_node(config).model_copy(update={"pod_queue": "newest-first"})
    other = simulate(parse_swarm("gen:burst:n=200,seed=2"), settings=config, model=newest)
    assert len(other.latencies) == small_orders
    assert min(other.workflow_latencies) < 0.5 * other.makespan
    assert other.latency(0.5) < results.latency(0.5)


def test_every_spot_attempt_preempted_ends_on_the_on_demand_fallback(
    dev_settings: Settings,
) -> None:
    """A share of 1: every attempt on a spot pool is lost, so each step of a small or medium
    order runs retry_limit times there and once more on its on-demand fallback, which is never
    preempted; every order still completes."""
    small_and_medium = [c for c in dev_settings.classes if c.name != "large"]
    config = dev_settings.model_copy(update={"classes": small_and_medium})
    model = with_attempt_preemption(_one_node(config), 1.0)
    results = simulate(parse_swarm("gen:burst:n=40,seed=4"), settings=config, model=model)
    completed = len(results.latencies)
    assert completed == 40 - results.dead_lettered > 0
    # dev: 5 steps, 6 with enrich: each of them preempted exactly retry_limit times
    retries = model.retry_limit
    assert retries * 5 * completed <= results.preemptions <= retries * 6 * completed
    assert results.preemptions % retries == 0
    assert results.retries == completed
    assert results.node_seconds["ondemand"] > 0
    none = simulate(parse_swarm("gen:burst:n=40,seed=4"), settings=config, model=_one_node(config))
    assert none.preemptions == 0 and none.makespan < results.makespan


def test_a_configuration_runs_on_its_environments_pools(dev_settings: Settings) -> None:
    """The autoscaled test cluster runs the overlay it was started with: prod's pools (60
    small-spot nodes) for config/prod.yaml, dev's (5) for config/dev.yaml."""
    model = load_model("test-cluster-autoscaled")
    prod = load_settings("config/prod.yaml", environ={})
    swarm = parse_swarm("gen:burst:n=5")
    on_prod = Simulation(swarm, settings=prod, model=model)
    on_dev = Simulation(swarm, settings=dev_settings, model=model)
    assert on_prod.model.pools == model.environments["prod"]
    assert on_prod.model.pool("small-spot").max_nodes == 60
    assert on_dev.model.pool("small-spot").max_nodes == 5


def test_empty_nodes_go_at_most_scale_down_nodes_per_scan(dev_settings: Settings) -> None:
    """Nodes scaled up for a burst go together once unneeded, or one per scan when the
    autoscaler removes one at a time (Karpenter before its budgets were named)."""
    small = next(c for c in dev_settings.classes if c.name == "small")
    config = dev_settings.model_copy(update={"classes": [small]})
    shipped = load_model("test-cluster-autoscaled")
    scaler = shipped.autoscaler.model_copy(update={"scale_down_nodes_per_scan": None})
    model = shipped.model_copy(update={"autoscaler": scaler})
    swarm = parse_swarm("gen:burst:n=300,seed=3")
    together = simulate(swarm, settings=config, model=model)
    scaler = model.autoscaler.model_copy(update={"scale_down_nodes_per_scan": 1})
    one_by_one = simulate(
        swarm, settings=config, model=model.model_copy(update={"autoscaler": scaler})
    )
    assert together.peak_nodes["small-spot"] >= 3
    assert one_by_one.makespan == together.makespan
    extra = one_by_one.node_seconds["small-spot"] - together.node_seconds["small-spot"]
    assert extra >= model.autoscaler.scan_seconds  # the last nodes waited for their turn


def test_the_controller_creates_pods_per_second_at_most(dev_settings: Settings) -> None:
    small = next(c for c in dev_settings.classes if c.name == "small")
    config = dev_settings.model_copy(update={"classes": [small]})
    model = _one_node(config)
    controller = model.controller.model_copy(update={"pods_per_second": 0.5})
    swarm = parse_swarm("gen:burst:n=60,seed=8")
    free = simulate(swarm, settings=config, model=model)
    slow = simulate(
        swarm, settings=config, model=model.model_copy(update={"controller": controller})
    )
    pods = 5 * len(slow.latencies)  # dev: 5 steps an order, 6 with enrich
    assert len(slow.latencies) == len(free.latencies) > 40
    assert slow.makespan >= pods / 0.5 > free.makespan
