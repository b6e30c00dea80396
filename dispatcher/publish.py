"""The Python API for upstream services that publish orders (see docs/publishing.md).

Why a module of its own: upstream code should import one stable name, not the dispatcher's
layers. Everything here is re-exported from :mod:`dispatcher.adapters.order_publisher` and
:mod:`dispatcher.errors`::

    from dispatcher.publish import InvalidOrder, OrderPublisher

    order = {"order_id": "o-1", "input": {"uri": "gs://bucket/o-1.bin", "size_bytes": 10}}
    with OrderPublisher("orders", project="my-project") as publisher:
        try:
            future = publisher.publish(order)
        except InvalidOrder as exc:  # nothing was sent
            print(exc.reason, exc.detail)
        else:
            print(future.result(timeout=60))  # the Pub/Sub message id

``publish`` checks the order with the service's own intake and raises :class:`InvalidOrder`
(with the ``dlq_reason`` the service would give it) without sending it; a valid order is
batched by the Pub/Sub client and its future resolves to the message id or raises
:class:`PublishError`. ``flush()`` waits for everything published so far, ``close()`` (or the
end of the ``with`` block) sends what is batched and waits for it.

For unit tests without a Pub/Sub server, pass ``client=MemoryPublisher()`` (the project's
in-memory twin of the Pub/Sub publisher; ``client.broker.topic(path)`` creates the topic,
``client.messages(path)`` lists what was stored).
"""

from __future__ import annotations

from dispatcher.adapters.order_publisher import (
    ORDER_ID_ATTRIBUTE,
    Batching,
    Checked,
    OrderCheck,
    OrderPublisher,
    encode,
)
from dispatcher.adapters.pubsub_memory_publisher import MemoryPublisher, MemoryPubSub
from dispatcher.config import Settings, load_settings
from dispatcher.core.order import Reason
from dispatcher.errors import InvalidOrder, PublishError

__all__ = [
    "ORDER_ID_ATTRIBUTE",
    "Batching",
    "Checked",
    "InvalidOrder",
    "MemoryPubSub",
    "MemoryPublisher",
    "OrderCheck",
    "OrderPublisher",
    "PublishError",
    "Reason",
    "Settings",
    "encode",
    "load_settings",
]
