"""The calibration script: reads a measured run, simulates it again, reports the error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.calibrate import calibrate, main, measured
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
