"""``dispatcher report`` (the Workflow's exit handler) against a real Pub/Sub server.

The Workflow is read from a file shaped like the object Argo's controller leaves behind for
order-pipeline (tests/argo_status.py), with the orders argument rendered exactly as the
dispatcher renders it; upstream must receive exactly one result per order with the right
status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from dispatcher.cli import cli
from dispatcher.config import load_settings
from dispatcher.core.classify import Classifier
from dispatcher.core.order import Order, OrderInput
from tests.argo_status import argo_workflow
from tests.pubsub.plugin import drain

pytestmark = pytest.mark.pubsub

IDS = ["o-r1", "o-r2", "o-r3"]


def workflow_file(
    tmp_path: Path, name: str, *, failing: dict[int, str] | None = None
) -> tuple[Path, str]:
    classifier = Classifier(load_settings(environ={}))
    items = [
        json.loads(
            classifier.item_json(
                Order(order_id=oid, input=OrderInput(uri=f"gs://in/{oid}", size_bytes=10))
            )
        )
        for oid in IDS
    ]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(argo_workflow(items, failing=failing, name=name)))
    return path, name


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--log-format", "json", *args], catch_exceptions=False)


def results(clients: Any, subscription: str, *, expected: int, timeout: float = 60) -> list[Any]:
    return list(drain(clients, subscription, expected=expected, timeout=timeout).values())


def by_order(messages: list[Any]) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    found: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    for message in messages:
        data = json.loads(message.data)
        assert data["order_id"] not in found, "two results for one order"
        found[data["order_id"]] = (data, dict(message.attributes))
    return found


def test_one_result_per_order_with_the_failed_order_named(
    pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    topic = make_topic_subscription(prefix="results")
    path, name = workflow_file(tmp_path, "bd-small-1", failing={1: "process"})
    result = run(
        "report",
        "--workflow",
        name,
        "--status",
        "Failed",
        "--workflow-file",
        str(path),
        "--topic",
        topic.topic,
    )
    assert result.exit_code == 0, result.output
    assert "published 3 results" in result.stdout
    found = by_order(results(pubsub_clients, topic.subscription, expected=3))
    assert set(found) == set(IDS)
    failed, attributes = found["o-r2"]
    assert attributes == {"order_id": "o-r2", "workflow": name, "status": "Failed"}
    assert failed["status"] == "Failed" and failed["workflow"] == name
    assert {s["step"] for s in failed["failed_steps"]} >= {"process"}
    assert failed["message"].startswith("process")
    for other in ("o-r1", "o-r3"):
        data, attrs = found[other]
        assert data["status"] == attrs["status"] == "Succeeded" and data["failed_steps"] == []


def test_a_succeeded_workflow_gives_every_order_success(
    pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    topic = make_topic_subscription(prefix="results")
    short_name = topic.topic.rsplit("/", 1)[1]
    path, name = workflow_file(tmp_path, "bd-medium-2")
    result = run(
        "report",
        "--workflow",
        name,
        "--status",
        "Succeeded",
        "--workflow-file",
        str(path),
        "--topic",
        short_name,
        "--project",
        pubsub_clients.project,
    )
    assert result.exit_code == 0, result.output
    found = by_order(results(pubsub_clients, topic.subscription, expected=3))
    assert set(found) == set(IDS)
    assert {data["status"] for data, _ in found.values()} == {"Succeeded"}


def test_an_unpublishable_result_fails_the_exit_handler(
    pubsub_clients: Any, tmp_path: Path
) -> None:
    path, name = workflow_file(tmp_path, "w")
    result = run(
        "report",
        "--workflow",
        name,
        "--status",
        "Succeeded",
        "--workflow-file",
        str(path),
        "--topic",
        f"projects/{pubsub_clients.project}/topics/no-such-results-topic",
    )
    assert result.exit_code == 1 and "not published" in result.output
