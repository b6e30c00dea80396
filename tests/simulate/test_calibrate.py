"""The calibration script: reads a measured run, simulates it again, reports the error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.calibrate import calibrate, main, measured, parse_fit, with_value
from dispatcher.simulate.model import load_model

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, result: dict[str, object]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(REPO / "config" / "dev.yaml", run / "config.yaml")
    (run / "result.json").write_text(json.dumps(result))
    return run


def test_a_run_the_simulator_made_itself_has_no_error(tmp_path: Path) -> None:
    swarm = "gen:burst:n=200,seed=5,invalid=0.01"
    run = _run(tmp_path, {"swarm": swarm, "config": "config.yaml", "makespan_seconds": 1.0})
    model = load_model("test-cluster")
    own = calibrate([run], model)[0]["simulated"]
    result = {
        "swarm": swarm,
        "config": "config.yaml",
        "makespan_seconds": own["makespan_seconds"],
        "node_seconds": own["node_seconds"],
        "latency_p50_seconds": own["latency_p50_seconds"],
        "latency_seconds": {"p99": own["latency_p99_seconds"]},
    }
    (run / "result.json").write_text(json.dumps(result))
    row = calibrate([run], model)[0]
    assert all(abs(error) < 1e-9 for error in row["error"].values()), row
    # Twice as long measured: the simulator is half as long, -50 %.
    result["makespan_seconds"] = 2 * own["makespan_seconds"]
    (run / "result.json").write_text(json.dumps(result))
    assert abs(calibrate([run], model)[0]["error"]["makespan_seconds"] + 0.5) < 1e-9


def test_missing_measures_are_left_out(tmp_path: Path) -> None:
    assert measured({"makespan_seconds": 3})["node_seconds"] is None
    run = _run(tmp_path, {"swarm": "gen:burst:n=20", "makespan_seconds": 100})
    out = tmp_path / "cal.json"
    assert main([str(run), "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["runs"][0]["error"]["node_seconds"] is None
    assert main([str(tmp_path / "nothing-here")]) == 1


def test_the_swarm_benchs_spelling_is_read() -> None:
    result = {
        "makespan_s": 300.0,
        "latency_p50_s": 100.0,
        "latency_p99_s": 290.0,
        "node_seconds": {"small-spot": 200.0, "system": 900.0, "large": 50.0},
    }
    assert measured(result) == {
        "makespan_seconds": 300.0,
        "node_seconds": 250.0,
        "latency_p50_seconds": 100.0,
        "latency_p99_seconds": 290.0,
    }


def test_a_fit_finds_the_number_a_run_was_made_with(tmp_path: Path) -> None:
    """Simulate a run with a step gap of 2 s, hand it over as measured: the grid fit of the
    step gap lands on 2 again, and a field of every pool is changed everywhere."""
    swarm = "gen:burst:n=150,seed=9"
    run = _run(tmp_path, {"swarm": swarm, "config": "config.yaml", "makespan_seconds": 1.0})
    model = load_model("test-cluster-autoscaled")
    made = calibrate([run], with_value(model, "controller.step_gap_seconds", 2.0))[0]
    sim = made["simulated"]
    (run / "result.json").write_text(
        json.dumps({"swarm": swarm, "config": "config.yaml", **sim, "latency_seconds": {}})
    )
    field, grid = parse_fit("controller.step_gap_seconds=0..4/1")
    assert (field, grid) == ("controller.step_gap_seconds", [0.0, 1.0, 2.0, 3.0, 4.0])
    others = [with_value(model, field, gap) for gap in (1.0, 3.0)]
    assert all(calibrate([run], m)[0]["error"]["makespan_seconds"] != 0 for m in others)
    out = tmp_path / "fit.json"
    assert main([str(run), "--cluster", "test-cluster-autoscaled", "--fit", "controller."
                 "step_gap_seconds=0..4/1", "--objective", "all", "--json", str(out)]) == 0  # fmt: skip
    document = json.loads(out.read_text())
    assert document["mean_abs_error"]["makespan_seconds"] < 1e-9
    assert main([str(run), "--cluster", "test-cluster-autoscaled", "--set",
                 "controller.step_gap_seconds=2", "--json", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["mean_abs_error"]["makespan_seconds"] < 1e-9
    slow = with_value(model, "pools.scale_up_seconds", 60.0)
    assert {p.scale_up_seconds for p in slow.pools} == {60.0}
    assert {p.scale_up_seconds for p in slow.environments["prod"]} == {60.0}
    one = with_value(model, "pools.medium-spot.max_nodes", 9)
    assert [p.max_nodes for p in one.pools] == [5, 9, 2, 1]
    assert isinstance(one.pools[1].max_nodes, int)
    assert one.environments["prod"][1].max_nodes == 9
    both = with_value(model, "autoscaler.scale_down_unneeded_seconds", 40.0)
    assert set(both.autoscaler.scale_down_unneeded_seconds.values()) == {40.0}


def test_a_run_is_simulated_with_its_own_economics_profile(tmp_path: Path) -> None:
    run = _run(tmp_path, {"swarm": "gen:burst:n=60,seed=2", "makespan_seconds": 100.0})
    model = load_model("test-cluster-autoscaled")
    plain = calibrate([run], model)[0]["simulated"]["makespan_seconds"]
    (run / "economics.yaml").write_text(
        "run_seconds:\n  small: {a: 40.0, b: 0.0}\n  medium: {a: 40.0, b: 0.0}\n"
        "  large: {a: 40.0, b: 0.0}\nspot_preemption_rate: 0.0\n"
    )
    slow = calibrate([run], model)[0]["simulated"]["makespan_seconds"]
    assert slow > plain + 4 * 30  # every step of the longest order took 40 s instead of a few
