"""``dispatcher dead-letter inspect|replay`` against a real Pub/Sub server with the real client.

The dead letters carry exactly the attributes the dispatcher's dead-letter publisher writes
(built by :func:`dispatcher.adapters.pubsub.dead_letter_attributes`), plus one left by Pub/Sub's
own dead-letter policy. What must hold: inspecting loses nothing; a replay publishes the
original data and attributes and acks only what it republished; a dry run or a failed publish
changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from dispatcher.adapters.pubsub import dead_letter_attributes
from dispatcher.cli import cli
from dispatcher.config import default_config_text
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Reason
from tests.pubsub.plugin import drain

pytestmark = pytest.mark.pubsub

ORDER = '{{"order_id":"{}","input":{{"uri":"gs://in/{}","size_bytes":1000}}}}'


def case(data: bytes, original: dict[str, str], reason: Reason, order_id: str | None) -> Any:
    delivery = SimpleNamespace(
        attributes=original,
        message_id=f"orig-{order_id}",
        publish_time=datetime.now(UTC) - timedelta(minutes=30),
    )
    decision = DeadLetter(
        receipts=(None,),
        reason=reason,
        detail=f"{reason.value} detail",
        stage="create",
        order_id=order_id,
    )
    return data, original, dead_letter_attributes(delivery, decision)  # type: ignore[arg-type]


CASES = [
    case(
        ORDER.format("o-t1", 1).encode(),
        {"order_id": "o-t1", "tenant": "acme"},
        Reason.TEMPLATE_MISSING,
        "o-t1",
    ),
    case(ORDER.format("o-t2", 2).encode(), {"tenant": "acme"}, Reason.TEMPLATE_MISSING, "o-t2"),
    case(ORDER.format("o-t3", 3).encode(), {}, Reason.TEMPLATE_MISSING, "o-t3"),
    case(b'{"order_id":"o-s1","input":{}}', {"case": "s1"}, Reason.SCHEMA, "o-s1"),
    case(b'{"order_id":"o-s2"}', {"case": "s2"}, Reason.SCHEMA, "o-s2"),
    case(b"{not json", {"case": "j"}, Reason.INVALID_JSON, None),
]
POLICY_DATA = ORDER.format("o-p1", 9).encode()
POLICY_ATTRIBUTES = {
    "order_id": "o-p1",
    "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    "CloudPubSubDeadLetterSourceSubscription": "orders-dispatcher",
}


@pytest.fixture
def dead_letters(pubsub_clients: Any, make_topic_subscription: Any) -> Any:
    """A dead-letter topic + subscription holding the cases, and an orders topic + subscription."""
    dlq = make_topic_subscription(prefix="dlq")
    orders = make_topic_subscription(prefix="orders")
    published: dict[str, tuple[bytes, dict[str, str]]] = {}
    futures = [
        (data, attributes, pubsub_clients.publisher.publish(dlq.topic, data, **attributes))
        for data, _, attributes in CASES
    ]
    futures.append(
        (
            POLICY_DATA,
            POLICY_ATTRIBUTES,
            pubsub_clients.publisher.publish(dlq.topic, POLICY_DATA, **POLICY_ATTRIBUTES),
        )
    )
    for data, attributes, future in futures:
        published[future.result(timeout=30)] = (data, attributes)
    return SimpleNamespace(dlq=dlq, orders=orders, published=published)


# The cases are published before each command starts, so 3 s of quiet means the subscription
# is empty; the commands' default (10 s) suits an operator, and would cost CI minutes here.
IDLE = ["--idle-timeout", "3"]


def run(*args: str) -> Result:
    sweeps = args[:2] in {("dead-letter", "inspect"), ("dead-letter", "replay")}
    idle = IDLE if sweeps and "--idle-timeout" not in args and "--help" not in args else []
    return CliRunner().invoke(cli, ["--log-format", "json", *args, *idle], catch_exceptions=False)


def test_inspect_shows_every_dead_letter_and_loses_none(
    pubsub_clients: Any, dead_letters: Any
) -> None:
    result = run(
        "dead-letter", "inspect", "--subscription", dead_letters.dlq.subscription, "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scanned"] == 7
    assert report["counts"] == {
        "template_missing": 3,
        "schema": 2,
        "invalid_json": 1,
        "max_delivery_attempts": 1,
    }
    by_id = {m["message_id"]: m for m in report["messages"]}
    assert set(by_id) == set(dead_letters.published)
    for message_id, (data, attributes) in dead_letters.published.items():
        shown = by_id[message_id]
        assert shown["attributes"] == attributes
        assert shown["data"] == data.decode()
    t2 = next(m for m in by_id.values() if m["order_id"] == "o-t2")
    assert (t2["reason"], t2["stage"], t2["detail"]) == (
        "template_missing",
        "create",
        "template_missing detail",
    )
    assert 29 * 60 <= t2["age_seconds"] < 3600
    assert next(m for m in by_id.values() if m["order_id"] == "o-p1")["stage"] == "pubsub"

    table = run("dead-letter", "inspect", "--subscription", dead_letters.dlq.subscription)
    assert table.exit_code == 0, table.output
    assert "template_missing" in table.stdout and "given back" in table.stdout

    kept = drain(pubsub_clients, dead_letters.dlq.subscription, expected=7)
    assert set(kept) == set(dead_letters.published)


def test_inspect_filters_by_reason_but_counts_everything(dead_letters: Any) -> None:
    result = run(
        "dead-letter",
        "inspect",
        "--subscription",
        dead_letters.dlq.subscription,
        "--reason",
        "schema",
        "--json",
    )
    report = json.loads(result.stdout)
    assert {m["reason"] for m in report["messages"]} == {"schema"}
    assert len(report["messages"]) == 2 and sum(report["counts"].values()) == 7
    limited = json.loads(
        run(
            "dead-letter",
            "inspect",
            "--subscription",
            dead_letters.dlq.subscription,
            "--limit",
            "1",
            "--json",
        ).stdout
    )
    assert len(limited["messages"]) == 1 and limited["stopped"] == "--limit 1 reached"


def test_replay_dry_run_changes_nothing(pubsub_clients: Any, dead_letters: Any) -> None:
    result = run(
        "dead-letter",
        "replay",
        "--subscription",
        dead_letters.dlq.subscription,
        "--to-topic",
        dead_letters.orders.topic,
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert "would replay 7 of 7" in " ".join(result.stdout.split())
    assert drain(pubsub_clients, dead_letters.orders.subscription, expected=0, timeout=10) == {}
    assert set(drain(pubsub_clients, dead_letters.dlq.subscription, expected=7)) == set(
        dead_letters.published
    )


def test_replay_publishes_the_originals_and_acks_only_those(
    pubsub_clients: Any, dead_letters: Any
) -> None:
    result = run(
        "dead-letter",
        "replay",
        "--subscription",
        dead_letters.dlq.subscription,
        "--to-topic",
        dead_letters.orders.topic,
        "--reason",
        "template_missing",
        "--reason",
        "max_delivery_attempts",
    )
    assert result.exit_code == 0, result.output
    replayed = drain(pubsub_clients, dead_letters.orders.subscription, expected=4)
    assert len(replayed) == 4
    originals = {data: original for data, original, _ in CASES}
    originals[POLICY_DATA] = {"order_id": "o-p1"}
    for message in replayed.values():
        attributes = dict(message.attributes)
        source = attributes.pop("replayed_from")
        data, _ = dead_letters.published[source]
        assert message.data == data
        expected = dict(originals[data])
        expected.setdefault("order_id", json.loads(data)["order_id"])  # added when dead-lettered
        assert attributes == expected
    left = drain(pubsub_clients, dead_letters.dlq.subscription, expected=3)
    assert {dict(m.attributes)["dlq_reason"] for m in left.values()} == {"schema", "invalid_json"}
    assert len(left) == 3


def test_replay_by_order_id_and_limit(pubsub_clients: Any, dead_letters: Any) -> None:
    sub, topic = dead_letters.dlq.subscription, dead_letters.orders.topic
    one = run(
        "dead-letter", "replay", "--subscription", sub, "--to-topic", topic, "--order-id", "o-t2"
    )
    assert one.exit_code == 0, one.output
    limited = run(
        "dead-letter",
        "replay",
        "--subscription",
        sub,
        "--to-topic",
        topic,
        "--reason",
        "schema",
        "--limit",
        "1",
    )
    assert limited.exit_code == 0, limited.output
    replayed = drain(pubsub_clients, dead_letters.orders.subscription, expected=2)
    ids = sorted(json.loads(m.data).get("order_id") for m in replayed.values())
    assert ids[0] == "o-s1" or ids[0] == "o-s2"
    assert ids[1] == "o-t2" and len(ids) == 2
    assert len(drain(pubsub_clients, sub, expected=5)) == 5


def test_replay_finds_the_orders_topic_from_the_configured_subscription(
    pubsub_clients: Any, dead_letters: Any, tmp_path: Path
) -> None:
    raw = yaml.safe_load(default_config_text())
    raw["pubsub"].update(
        project=pubsub_clients.project,
        subscription=dead_letters.orders.subscription.rsplit("/", 1)[1],
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = run(
        "dead-letter",
        "replay",
        "--config",
        str(config),
        "--subscription",
        dead_letters.dlq.subscription,
        "--order-id",
        "o-t1",
    )
    assert result.exit_code == 0, result.output
    (replayed,) = drain(pubsub_clients, dead_letters.orders.subscription, expected=1).values()
    assert json.loads(replayed.data)["order_id"] == "o-t1"


def test_a_failed_publish_acks_nothing(pubsub_clients: Any, dead_letters: Any) -> None:
    missing = dead_letters.orders.topic + "-does-not-exist"
    result = run(
        "dead-letter",
        "replay",
        "--subscription",
        dead_letters.dlq.subscription,
        "--to-topic",
        missing,
    )
    assert result.exit_code == 1
    assert "publish(es) failed" in result.output
    assert set(drain(pubsub_clients, dead_letters.dlq.subscription, expected=7)) == set(
        dead_letters.published
    )


def test_a_missing_subscription_is_a_clear_error(dead_letters: Any) -> None:
    result = run(
        "dead-letter", "inspect", "--subscription", dead_letters.dlq.subscription + "-nope"
    )
    assert result.exit_code == 1 and "does not exist" in result.output


def test_the_cli_own_variables_are_not_taken_for_config_overrides(dead_letters: Any) -> None:
    # docs/operations.md documents these as defaults for the CLI's options; the configuration
    # overrides (DISPATCHER_<SECTION>__<FIELD>) must not read them as unknown config fields.
    env = {
        "DISPATCHER_DEAD_LETTER_SUBSCRIPTION": dead_letters.dlq.subscription,
        "DISPATCHER_ORDERS_TOPIC": dead_letters.orders.topic,
        "DISPATCHER_RESULTS_TOPIC": "projects/p/topics/order-results",
        "DISPATCHER_LIMITS__BURST": "7",
    }
    result = CliRunner(env=env).invoke(
        cli,
        ["--log-format", "json", "dead-letter", "inspect", "--json", *IDLE],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scanned"] == 7


def test_replay_by_stage_and_since_streams_with_yaml_summary(
    pubsub_clients: Any, dead_letters: Any
) -> None:
    sub, topic = dead_letters.dlq.subscription, dead_letters.orders.topic
    wrong = run("dead-letter", "replay", "--subscription", sub, "--since", "yesterday")
    assert wrong.exit_code == 2 and "--since" in wrong.output
    future = run(
        "dead-letter", "replay", "--subscription", sub, "--to-topic", topic, "--since",
        "2999-01-01T00:00:00Z", "-o", "json",
    )  # fmt: skip
    assert future.exit_code == 0 and json.loads(future.stdout)["selected"] == 0
    result = run(
        "dead-letter", "replay", "--subscription", sub, "--to-topic", topic,
        "--stage", "pubsub", "--since", "1h", "-o", "yaml",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = yaml.safe_load(result.stdout)
    assert (summary["looked_at"], summary["selected"], summary["replayed"]) == (7, 1, 1)
    assert summary["given_back"] == 6 and summary["stopped"].startswith("no new dead letter")
    (replayed,) = drain(pubsub_clients, dead_letters.orders.subscription, expected=1).values()
    assert json.loads(replayed.data)["order_id"] == "o-p1"
    assert len(drain(pubsub_clients, sub, expected=6)) == 6
