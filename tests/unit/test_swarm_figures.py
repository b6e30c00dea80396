"""bench.swarm's figures from recorded Workflows and Node lives: cost, retries, the check."""

from __future__ import annotations

import pytest

from bench.swarm_cost import NodeLife, cost, hourly, load_prices, node_seconds, node_shape, quantity
from bench.swarm_report import targets
from bench.swarm_result import Phase, check, figures
from bench.swarm_watch import Recorder, WorkflowSeen, retries

PRICES = load_prices()


def _node(name: str, pool: str, *, born: float, gone: float | None, spot: bool = False) -> NodeLife:
    return NodeLife(name, pool, "e2-standard-4", spot, 4.0, 16.0, born=born, gone=gone)


def _phase(valid: set[str], **kw: float | None) -> Phase:
    values = {"started": 100.0, "ended": 200.0, "zero_at": None, "window_end": 200.0, **kw}
    return Phase(
        consumer="dispatcher", environment="dev", published=len(valid) + 1,
        valid=frozenset(valid), published_s=1.0, dead_lettered=1, **values,  # type: ignore[arg-type]
    )  # fmt: skip


def test_quantities_and_shape() -> None:
    assert quantity("3920m") == pytest.approx(3.92)
    assert quantity("16Gi") == 16 * 1024**3
    node = {
        "metadata": {
            "labels": {
                "node.kubernetes.io/instance-type": "n2-standard-8",
                "cloud.google.com/gke-spot": "true",
            }
        },
        "status": {"capacity": {"cpu": "8", "memory": f"{32 * 1024 * 1024}Ki"}},
    }
    assert node_shape(node) == ("n2-standard-8", True, 8.0, 32.0)


def test_every_price_is_dated_and_spot_is_cheaper() -> None:
    assert PRICES["date"] and PRICES["source"]
    for family in PRICES["families"].values():
        for unit in ("vcpu_hour", "gib_hour"):
            assert 0 < family["spot"][unit] < family["on_demand"][unit]
    on_demand = hourly(PRICES, machine="e2-standard-4", spot=False, vcpus=4, gib=16)
    assert on_demand == pytest.approx(4 * 0.021811 + 16 * 0.002923)


def test_node_seconds_clip_lifetimes_to_the_window() -> None:
    lives = [
        _node("a", "ondemand", born=50, gone=None),  # before the window, never gone: 100 s
        _node("b", "ondemand", born=150, gone=160),  # inside: 10 s
        _node("c", "small-spot", born=10, gone=90, spot=True),  # gone before: nothing
    ]
    assert node_seconds(lives, start=100, end=200) == {"ondemand": 110.0}
    dollars = cost(lives, start=100, end=200, prices=PRICES)
    rate = hourly(PRICES, machine="e2-standard-4", spot=False, vcpus=4, gib=16)
    assert dollars == {"ondemand": pytest.approx(rate * 110 / 3600, abs=1e-6)}


def test_retries_count_attempts_and_orders() -> None:
    nodes = {
        "r1": {"type": "Retry", "children": ["p1", "p2", "p3"], "boundaryID": "order-a"},
        "r2": {"type": "Retry", "children": ["p4", "p5"], "boundaryID": "order-a"},
        "r3": {"type": "Retry", "children": ["p6"], "boundaryID": "order-b"},
        "p1": {"type": "Pod"},
    }
    assert retries({"nodes": nodes}) == (3, 1)
    assert retries({}) == (0, 0)


def test_recorder_times_the_first_end_and_counts_its_retries() -> None:
    recorder = Recorder(None, metrics_url="", etcd_url="")
    meta = {
        "name": "wf-1",
        "labels": {
            "burst-dispatcher.io/environment": "dev",
            "burst-dispatcher.io/size-class": "small",
        },
        "annotations": {"burst-dispatcher.io/order-ids": '["o1", "o2"]'},
    }
    retried = {"r": {"type": "Retry", "children": ["a", "b"], "boundaryID": "o1-dag"}}
    recorder._workflow("ADDED", {"metadata": meta, "status": {"phase": "Running"}})
    assert recorder.workflows["/wf-1"].finished is None
    recorder._workflow(
        "MODIFIED", {"metadata": meta, "status": {"phase": "Succeeded", "nodes": retried}}
    )
    seen = recorder.workflows["/wf-1"]
    first = seen.finished
    recorder._workflow("MODIFIED", {"metadata": meta, "status": {"phase": "Succeeded"}})
    assert (seen.orders, seen.phase, seen.finished) == (frozenset({"o1", "o2"}), "Succeeded", first)
    assert (seen.retried_attempts, seen.retried_orders) == (1, 1)
    recorder._workflow("DELETED", {"metadata": meta, "status": {"phase": "Succeeded"}})
    assert seen.deleted


def test_check_finds_lost_and_duplicated_orders() -> None:
    seen = [
        WorkflowSeen("dev", "small", frozenset({"o1", "o2"}), 0.0, "Succeeded", 1.0),
        WorkflowSeen("dev", "small", frozenset({"o2"}), 0.0, "Succeeded", 2.0),
        WorkflowSeen("dev", "large", frozenset({"o3"}), 0.0, "Failed", 3.0),
    ]
    result = check(_phase({"o1", "o2", "o3", "o4"}), seen)
    assert result["lost"] == 2  # o3 only in a Failed Workflow, o4 nowhere
    assert result["duplicated"] == 1
    assert result["failed_workflows"] == 1
    assert result["succeeded_once"] == 1


def test_figures_time_and_cost_per_order() -> None:
    seen = [
        WorkflowSeen("dev", "small", frozenset({"o1", "o2"}), 101.0, "Succeeded", 130.0),
        WorkflowSeen("dev", "large", frozenset({"o3"}), 101.0, "Succeeded", 160.0),
        WorkflowSeen("dev-naive", "small", frozenset({"o1"}), 101.0, "Succeeded", 190.0),
    ]
    samples = [
        {"t": 110.0, "workflow_objects": {"dev": 2}, "etcd_bytes": 10},
        {"t": 150.0, "workflow_objects": {"dev": 1}, "etcd_bytes": 30},
        {"t": 250.0, "workflow_objects": {"dev": 9}, "etcd_bytes": 99},  # after the window
    ]
    lives = [_node("a", "ondemand", born=0, gone=None), _node("s", "system", born=0, gone=None)]
    out = figures(
        _phase({"o1", "o2", "o3"}, zero_at=190.0, window_end=190.0),
        workflows=seen, nodes=lives, samples=samples, prices=PRICES,
    )  # fmt: skip
    assert out["makespan_s"] == 60.0
    assert (out["latency_p50_s"], out["latency_p99_s"]) == (30.0, 60.0)
    assert out["orders_per_min"] == 3.0
    assert out["workflows_per_min"] == 2.0
    assert (out["peak_workflow_objects"], out["etcd_bytes_peak"]) == (2, 30)
    assert out["back_to_zero_s"] == 30.0
    assert out["node_seconds"] == {"ondemand": 90.0, "system": 90.0}
    assert out["cost_per_order_usd"] == pytest.approx(out["cost_usd"]["ondemand"] / 3, rel=1e-4)
    assert out["check"]["lost"] == 0


def test_targets_judge_the_ratios() -> None:
    result = {
        "cost_per_order_usd": 0.2, "orders_per_min": 300.0, "back_to_zero_s": None,
        "check": {"lost": 0, "duplicated": 0},
        "naive": {"cost_per_order_usd": 1.0, "orders_per_min": 10.0, "back_to_zero_s": 140.0},
        "run": {"consolidate_after": None},
    }  # fmt: skip
    met = {name: ok for name, _, _, ok in targets(result)}
    assert met == {
        "cost per order": True,
        "orders/min vs naive": True,
        "pools back to zero": None,
        "no loss / duplicate": True,
    }
    autoscaled = {**result, "back_to_zero_s": 60.0, "run": {"consolidate_after": "15s"}}
    met = {name: ok for name, _, _, ok in targets(autoscaled)}
    assert met["pools back to zero"] is False  # the naive phase took 140 s > 15 + 120


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_naive_runs_everything_on_demand_where_it_fits(environment: str) -> None:
    from pathlib import Path

    from bench.swarm_naive import ONDEMAND, naive_settings
    from dispatcher.config import load_settings

    shipped = load_settings(Path(__file__).parents[2] / "config" / f"{environment}.yaml")
    naive = naive_settings(shipped, environment="naive")
    for ours, theirs in zip(shipped.classes, naive.classes, strict=True):
        assert not theirs.spot
        # Spot classes move to the on-demand pool; an on-demand class (prod's `large`, whose
        # pods do not fit the on-demand pool's machines) keeps its own.
        expected = ONDEMAND if ours.spot else ours.node_pool
        assert theirs.node_pool == expected
        assert (theirs.fallback_node_pool or theirs.node_pool) in {ONDEMAND, ours.node_pool}


def test_recorder_counts_pool_nodes_only() -> None:
    # The local stack's stand-in Node for `dispatcher run` has no pool: counted, it kept every
    # run from ever seeing its pools back at zero.
    recorder = Recorder(None, metrics_url="", etcd_url="")
    shape = {"node.kubernetes.io/instance-type": "e2-standard-4"}
    pool = {"cloud.google.com/gke-nodepool": "small-spot", **shape}
    recorder._node("ADDED", {"metadata": {"name": "n1", "labels": pool}, "status": {}})
    recorder._node("ADDED", {"metadata": {"name": "standin", "labels": {}}, "status": {}})
    assert set(recorder.nodes) == {"n1"}


def test_recorder_tells_namespaces_apart() -> None:
    recorder = Recorder(None, metrics_url="", etcd_url="")
    for namespace in ("burst-dispatcher", "burst-naive"):
        meta = {"name": "bd-large-1", "namespace": namespace, "labels": {}}
        recorder._workflow("ADDED", {"metadata": meta, "status": {"phase": "Succeeded"}})
    assert len(recorder.workflows) == 2


def test_a_failed_list_or_watch_means_listing_again() -> None:
    import threading

    from bench.swarm_watch import _stream

    stop = threading.Event()
    calls: list[str] = []
    seen: list[str] = []

    def list_call(**kw: object) -> dict[str, object]:
        calls.append("watch" if kw.get("watch") else "list")
        if kw.get("watch"):
            raise TimeoutError("read timed out")  # a loaded API server
        if calls.count("list") == 1:
            raise ConnectionResetError("reset")
        return {"items": [{"name": f"wf-{len(calls)}"}], "metadata": {"resourceVersion": "7"}}

    def on(kind: str, item: dict[str, str]) -> None:
        seen.append(item["name"])
        if len(seen) == 2:
            stop.set()

    _stream(list_call, stop, on, pause=0.0)
    assert calls[0] == "list" and calls.count("list") == 3  # failed list, then listed again
    assert seen == ["wf-2", "wf-4"]
