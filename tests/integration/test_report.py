"""``dispatcher report`` (the Workflow's exit handler) against a real Pub/Sub server.

The orders argument is rendered exactly as the dispatcher renders it into a Workflow, and the
failures look like Argo's ``{{workflow.failures}}`` for order-pipeline's fan-out; upstream must
receive exactly one result per order with the right status.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dispatcher.cli import cli
from dispatcher.config import load_settings
from dispatcher.core.classify import Classifier
from dispatcher.core.order import Order, OrderInput
from tests.pubsub.plugin import drain

pytestmark = pytest.mark.pubsub

IDS = ["o-r1", "o-r2", "o-r3"]


def orders_argument() -> str:
    classifier = Classifier(load_settings(environ={}))
    items = [
        classifier.item_json(
            Order(order_id=oid, input=OrderInput(uri=f"gs://in/{oid}", size_bytes=10))
        )
        for oid in IDS
    ]
    return "[" + ",".join(items) + "]"


def argo_display_name(index: int, item_json: str) -> str:
    """How Argo names a fanned-out task for a map item: sorted key:value pairs."""
    item = json.loads(item_json)
    pairs = ",".join(
        f"{k}:{v if not isinstance(v, dict) else 'map[]'}" for k, v in sorted(item.items())
    )
    return f"order({index}:{pairs})"


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
    pubsub_clients: Any, make_topic_subscription: Any
) -> None:
    topic = make_topic_subscription(prefix="results")
    orders = orders_argument()
    items = json.loads(orders)
    failures = json.dumps(
        [
            {
                "displayName": argo_display_name(1, json.dumps(items[1])),
                "message": "child 'x' failed",
                "templateName": "order",
                "phase": "Failed",
                "podName": "",
                "finishedAt": "2025-06-01T12:00:00Z",
            },
            {
                "displayName": "process",
                "message": "Error (exit code 2)",
                "templateName": "process",
                "phase": "Failed",
                "podName": "bd-small-1-process-42",
                "finishedAt": "2025-06-01T12:00:00Z",
            },
        ]
    )
    result = run(
        "report",
        "--workflow",
        "bd-small-1",
        "--status",
        "Failed",
        "--failures",
        failures,
        "--orders",
        orders,
        "--topic",
        topic.topic,
    )
    assert result.exit_code == 0, result.output
    assert "published 3 results" in result.stdout
    found = by_order(results(pubsub_clients, topic.subscription, expected=3))
    assert set(found) == set(IDS)
    failed, attributes = found["o-r2"]
    assert attributes == {"order_id": "o-r2", "workflow": "bd-small-1", "status": "Failed"}
    assert failed["status"] == "Failed" and failed["workflow"] == "bd-small-1"
    assert {s["step"] for s in failed["failed_steps"]} >= {"process"}
    assert failed["message"].startswith("process: Error (exit code 2)")
    for other in ("o-r1", "o-r3"):
        data, attrs = found[other]
        assert data["status"] == attrs["status"] == "Succeeded" and data["failed_steps"] == []


@pytest.mark.parametrize(
    ("failures", "status"), [("", "Succeeded"), ("null", "Failed"), ("[]", "Error")]
)
def test_empty_failures_give_every_order_the_workflow_status(
    pubsub_clients: Any, make_topic_subscription: Any, failures: str, status: str
) -> None:
    topic = make_topic_subscription(prefix="results")
    short_name = topic.topic.rsplit("/", 1)[1]
    result = run(
        "report",
        "--workflow",
        "bd-medium-2",
        "--status",
        status,
        "--failures",
        failures,
        "--orders",
        orders_argument(),
        "--topic",
        short_name,
        "--project",
        pubsub_clients.project,
    )
    assert result.exit_code == 0, result.output
    found = by_order(results(pubsub_clients, topic.subscription, expected=3))
    assert set(found) == set(IDS)
    assert {data["status"] for data, _ in found.values()} == {status}


def test_an_unpublishable_result_fails_the_exit_handler(pubsub_clients: Any) -> None:
    result = run(
        "report",
        "--workflow",
        "w",
        "--status",
        "Succeeded",
        "--orders",
        orders_argument(),
        "--topic",
        f"projects/{pubsub_clients.project}/topics/no-such-results-topic",
    )
    assert result.exit_code == 1 and "not published" in result.output
