"""`dispatcher run` as a process: orders in, manifests out, health endpoints, SIGTERM drain."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.local.process import DispatcherProcess
from tests.unit.helpers import get

pytestmark = pytest.mark.pubsub


def test_run_with_sink_dir_then_sigterm(
    tmp_path: Path, pubsub_clients: Any, pubsub_emulator: Any
) -> None:
    config = tmp_path / "config.yaml"
    sub_name = f"orders-run-{time.monotonic_ns()}"
    config.write_text(
        yaml.safe_dump(
            {
                "pubsub": {
                    "project": pubsub_emulator.project,
                    "subscription": sub_name,
                    "dead_letter_topic": f"{sub_name}-dlq",
                },
                "classes": [
                    {
                        "name": "small",
                        "max_size_bytes": None,
                        "template": "order-pipeline",
                        "max_orders_per_workflow": 10,
                        "max_batch_input_bytes": 10**12,
                        "max_linger_seconds": 60,
                        "node_pool": "small-spot",
                        "spot": True,
                        "cpu": "500m",
                        "memory": "1Gi",
                        "max_live_workflows": 100,
                    },
                ],
                "service": {"http_port": 0, "drain_seconds": 20, "reload_seconds": 0.2},
            }
        )
    )
    out = tmp_path / "workflows"
    topic = f"{sub_name}-topic"
    proc = DispatcherProcess(
        ["--config", str(config), "--sink-dir", str(out), "--ensure-topology", "--topic", topic],
        env={},
        log_path=tmp_path / "dispatcher.log",
    )
    try:
        port = int(proc.wait_for("ops_listening")["port"])
        assert get(port, "/healthz")[0] == 200
        deadline = time.monotonic() + 30
        while get(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, get(port, "/readyz")
            time.sleep(0.1)
        assert "burst_dispatcher_ready 1.0" in get(port, "/metrics")[1]
        topic_path = pubsub_clients.publisher.topic_path(pubsub_emulator.project, topic)
        for i in range(25):
            body = {"order_id": f"run-{i}", "input": {"uri": "gs://x", "size_bytes": 10}}
            pubsub_clients.publisher.publish(topic_path, json.dumps(body).encode()).result(30)
        # 25 orders, 10 per Workflow: two full batches now, the partial one on SIGTERM
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.yaml"))) < 2:
            assert time.monotonic() < deadline, "full batches were not sent"
            time.sleep(0.1)
        # SIGTERM only once all 25 are in this process (an order still in Pub/Sub would
        # rightly stay there, not be part of the drain)
        deadline = time.monotonic() + 60
        while "burst_dispatcher_orders_received_total 25.0" not in get(port, "/metrics")[1]:
            assert time.monotonic() < deadline, get(port, "/metrics")[1]
            time.sleep(0.1)
        # a change beyond the live limits is refused whole, naming the fields (never
        # half-applied): the environment and a batch shape change together with a cap
        original = yaml.safe_load(config.read_text())
        refused = yaml.safe_load(config.read_text())
        refused["environment"] = "staging"
        refused["classes"][0]["max_linger_seconds"] = 3
        refused["classes"][0]["max_live_workflows"] = 9
        config.write_text(yaml.safe_dump(refused))
        refusal = proc.wait_for("limits_reload_refused", timeout=30)
        assert refusal["fields"] == ["classes.small.max_linger_seconds", "environment"]
        # limits change live: rewrite the mounted file, the service logs what changed
        changed = original
        changed["classes"][0]["max_live_workflows"] = 7
        changed["limits"] = {**changed.get("limits", {}), "workflows_per_second": 2.5}
        config.write_text(yaml.safe_dump(changed))
        reload = proc.wait_for("limits_reloaded", timeout=30)
        # measured from the values in force, not from the refused file: nothing of it applied
        assert reload["changes"]["classes[small].max_live_workflows"] == [100, 7]
        assert reload["changes"]["limits.workflows_per_second"] == [5.0, 2.5]
        # the cap in force is exported (dashboards put it beside the live count)
        deadline = time.monotonic() + 30
        while 'burst_dispatcher_class_cap{size_class="small"} 7.0' not in get(port, "/metrics")[1]:
            assert time.monotonic() < deadline, get(port, "/metrics")[1]
            time.sleep(0.1)
        assert proc.terminate() == 0
    finally:
        proc.close()
    ids = sorted(
        oid
        for f in out.glob("*.yaml")
        for oid in json.loads(
            yaml.safe_load(f.read_text())["metadata"]["annotations"][
                "burst-dispatcher.io/order-ids"
            ]
        )
    )
    assert ids == sorted(f"run-{i}" for i in range(25))
    assert len(list(out.glob("*.yaml"))) == 3
    assert proc.logged("dispatcher_stopped")[0]["drained"] is True
    created = proc.logged("workflow_created")
    assert created and all(e["severity"] == "INFO" and e["workflow"] for e in created)
