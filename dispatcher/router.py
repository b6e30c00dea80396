"""Routing stage of ``class_topics`` mode: intake subscription -> one topic per size class.

Why a stage of its own: with one subscription, flow control is shared by every class, so a
class held back by its cap fills the window and small orders stop flowing. Routing each valid
order to its class's topic gives every class its own subscription and flow-control window:
a saturated class pauses only its own stream, its backlog stays in Pub/Sub undelivered (no
delivery attempts spent), and the other classes keep moving. Routing is stateless and runs on
the client's callback threads: validate, classify, publish, then ack the original.
"""

from __future__ import annotations

from dispatcher.adapters.pubsub import DeadLetterPublisher, Delivery, Republisher
from dispatcher.config import Settings
from dispatcher.core.classify import Classifier
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Rejection, parse_order
from dispatcher.metrics import Metrics
from dispatcher.runner import send_to_dead_letters


class Router:
    def __init__(
        self,
        settings: Settings,
        *,
        republisher: Republisher,
        dead_letters: DeadLetterPublisher,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._classifier = Classifier(settings)
        self._republisher = republisher
        self._dead_letters = dead_letters
        self._metrics = metrics

    def on_message(self, delivery: Delivery) -> None:
        """The intake callback: every delivery ends published (then acked) or nacked."""
        self._metrics.received()
        attributes = delivery.attributes or {}
        parsed = parse_order(
            delivery.data, attributes, max_bytes=self._settings.orders.max_order_bytes
        )
        if isinstance(parsed, Rejection):
            self._reject(delivery, parsed, "validate")
            return
        ticket = self._classifier.ticket(parsed, now=0.0, receipt=None)
        if isinstance(ticket, Rejection):
            self._reject(delivery, ticket, "classify")
            return
        publish_time = delivery.publish_time
        self._republisher.move(
            delivery,
            size_class=ticket.size_class,
            extra={
                "order_id": parsed.order_id,
                "routed_message_id": str(delivery.message_id),
                "original_publish_time": publish_time.isoformat() if publish_time else "",
            },
        )

    def _reject(self, delivery: Delivery, rejection: Rejection, stage: str) -> None:
        decision: DeadLetter[Delivery] = DeadLetter(
            delivery, rejection.reason, rejection.detail, stage, rejection.order_id
        )
        send_to_dead_letters(decision, dead_letters=self._dead_letters, metrics=self._metrics)
