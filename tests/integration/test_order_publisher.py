"""``dispatcher.publish.OrderPublisher`` against a real Pub/Sub server and the real client.

What must hold: futures resolve to the ids of the messages a subscription then receives, and
those messages are exactly the valid orders, byte for byte; an order the service would
dead-letter raises ``InvalidOrder`` with the service's reason and sends nothing; a failed publish
surfaces as ``PublishError`` on the future; a closed publisher takes nothing more.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import pytest

from dispatcher.publish import InvalidOrder, OrderPublisher, PublishError, Reason
from tests.pubsub.plugin import drain

pytestmark = pytest.mark.pubsub


def body(order_id: str, size: int = 2048) -> dict[str, Any]:
    return {"order_id": order_id, "input": {"uri": f"gs://in/{order_id}.bin", "size_bytes": size}}


def test_futures_resolve_to_the_ids_of_exactly_the_orders_sent(
    pubsub_clients: Any, make_topic_subscription: Any
) -> None:
    names = make_topic_subscription(prefix="api")
    as_bytes = (
        b'{"order_id":"a-1","input":{"uri":"gs://in/a-1","size_bytes":7},"params":{"x":[1,2]}}'
    )
    as_text = '{"order_id":"a-2 ü","input":{"uri":"gs://in/a-2","size_bytes":8}}'
    with OrderPublisher(names.topic) as publisher:
        futures: dict[bytes, Future[str]] = {
            as_bytes: publisher.publish(as_bytes),
            as_text.encode(): publisher.publish(as_text, attributes={"tenant": "acme"}),
        }
        many = {f"a-{i}": publisher.publish(body(f"a-{i}")) for i in range(3, 203)}
        publisher.flush(timeout=60)
    ids = {future.result(timeout=0): data for data, future in futures.items()}
    ids.update({future.result(timeout=0): key for key, future in many.items()})
    got = drain(pubsub_clients, names.subscription, expected=202)
    assert set(got) == set(ids)
    by_data = {m.data: m for m in got.values()}
    assert dict(by_data[as_bytes].attributes) == {"order_id": "a-1"}
    assert dict(by_data[as_text.encode()].attributes) == {"order_id": "a-2 ü", "tenant": "acme"}
    for message_id, message in got.items():
        sent = ids[message_id]
        if isinstance(sent, str):  # a mapping: compact JSON of it
            assert json.loads(message.data) == body(sent)
            assert message.data == json.dumps(body(sent), separators=(",", ":")).encode()
        else:
            assert message.data == sent
    assert len(by_data) == 202


@pytest.mark.parametrize(
    ("order", "attributes", "reason", "stage"),
    [
        (b"{nope", None, Reason.INVALID_JSON, "validate"),
        ({"order_id": "i-1", "input": {"uri": "gs://x/y"}}, None, Reason.SCHEMA, "validate"),
        (body("i-2"), {"order_id": "other"}, Reason.ATTRIBUTE_MISMATCH, "validate"),
        ({**body("i-3"), "steps": {"nope": True}}, None, Reason.UNKNOWN_STEP, "classify"),
        ({**body("i-4"), "params": {"t": "{{workflow.name}}"}}, None, Reason.SCHEMA, "validate"),
        ({**body("i-5"), "params": {"pad": "x" * 20_000}}, None, Reason.BODY_TOO_LARGE, "validate"),
        (
            {"order_id": "i-6", "input": {"uri": "file:///etc/x", "size_bytes": 1}},
            None,
            Reason.URI_SCHEME,
            "classify",
        ),
    ],
)
def test_an_invalid_order_raises_and_sends_nothing(
    pubsub_clients: Any,
    make_topic_subscription: Any,
    order: Any,
    attributes: dict[str, str] | None,
    reason: Reason,
    stage: str,
) -> None:
    names = make_topic_subscription(prefix="api")
    with OrderPublisher(names.topic) as publisher:
        with pytest.raises(InvalidOrder) as caught:
            publisher.publish(order, attributes=attributes)
        assert (caught.value.reason, caught.value.stage) == (reason, stage)
        assert caught.value.detail and reason.value in str(caught.value)
        marker = publisher.publish(body("marker")).result(timeout=60)
    got = drain(pubsub_clients, names.subscription, expected=1)
    assert list(got) == [marker]


def test_a_failed_publish_is_a_publish_error_on_the_future(pubsub_clients: Any) -> None:
    missing = f"projects/{pubsub_clients.project}/topics/no-such-topic-api"
    with OrderPublisher(missing) as publisher:
        future = publisher.publish(body("f-1"))
        with pytest.raises(PublishError) as caught:
            future.result(timeout=60)
    assert caught.value.order_id == "f-1" and "no-such-topic-api" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_short_topic_names_use_the_project_and_close_is_final(
    pubsub_clients: Any, make_topic_subscription: Any
) -> None:
    names = make_topic_subscription(prefix="api")
    short = names.topic.rsplit("/", 1)[1]
    publisher = OrderPublisher(short, project=pubsub_clients.project)
    assert publisher.topic == names.topic
    future = publisher.publish(body("c-1"))
    publisher.close()
    assert future.done()  # close waited for it
    with pytest.raises(RuntimeError):
        publisher.publish(body("c-2"))
    assert list(drain(pubsub_clients, names.subscription, expected=1)) == [future.result()]
