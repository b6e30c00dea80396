"""Routing stage of ``class_topics`` mode: intake subscription -> one topic per size class.

Why a stage of its own: with one subscription, flow control is shared by every class, so a
class held back by its cap fills the window and small orders stop flowing. Routing each valid
order to its class's topic gives every class its own subscription and flow-control window:
a saturated class pauses only its own stream, its backlog stays in Pub/Sub undelivered (no
delivery attempts spent), and the other classes keep moving. Routing is stateless and runs on
the client's callback threads: the same intake as the engine, publish, then ack the original.
Nothing raised here escapes to the client (which would nack and redeliver a poison forever):
an unexpected failure dead-letters the message with reason ``internal_error``.
"""

from __future__ import annotations

from typing import Any

from dispatcher.adapters.pubsub import Delivery, is_too_large, original_attributes
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.intake import Intake, Refused
from dispatcher.core.order import Reason
from dispatcher.core.settings import Settings
from dispatcher.logging import get_logger
from dispatcher.service.copies import Copies
from dispatcher.service.metrics import Metrics

log = get_logger()


class Router:
    def __init__(self, settings: Settings, *, publisher: Any, metrics: Metrics) -> None:
        self._settings = settings
        self._intake = Intake(settings)
        self._metrics = metrics
        self._copies: Copies[Delivery] = Copies(publisher, metrics=metrics, settle=self._settle)
        #: Set at shutdown: ack with Acknowledge calls, the stream is being closed.
        self.unary_acks: Any = None

    def on_message(self, delivery: Delivery) -> None:
        """The intake callback: every delivery ends published (then acked) or left to Pub/Sub."""
        self._metrics.received()
        try:
            self._route(delivery)
        except Exception as exc:
            self._metrics.decision_errors.inc()
            log.exception("route_failed", message_id=delivery.message_id)
            detail = f"{type(exc).__name__}: {exc}"
            self._dead_letter(DeadLetter((delivery,), Reason.INTERNAL_ERROR, detail, "route"))

    def _route(self, delivery: Delivery) -> None:
        ticket = self._intake(delivery.data, delivery.attributes or {}, receipt=None, now=0.0)
        if isinstance(ticket, Refused):
            rejection = ticket.rejection
            self._dead_letter(
                DeadLetter(
                    (delivery,),
                    rejection.reason,
                    rejection.detail,
                    ticket.stage,
                    rejection.order_id,
                )
            )
            return
        publish_time = delivery.publish_time
        attributes = original_attributes(delivery)
        attributes.update(
            {
                "order_id": ticket.order_id,
                "routed_message_id": str(delivery.message_id),
                "original_publish_time": publish_time.isoformat() if publish_time else "",
                "size_class": ticket.size_class,
            }
        )
        order_id = ticket.order_id
        self._copies.copy(
            (delivery,),
            topic=self._settings.pubsub.class_topic_path(ticket.size_class),
            attributes=attributes,
            done=lambda error: self._routed(delivery, order_id, error),
        )

    def _dead_letter(self, decision: DeadLetter[Delivery]) -> None:
        delivery = decision.receipt

        def dead_lettered(error: BaseException | None) -> None:
            # Too large even to dead-letter: already nacked, for Pub/Sub's policy to keep.
            if error is not None and not is_too_large(error):
                delivery.nack()  # Pub/Sub is refusing publishes: redelivery is the way on

        self._copies.dead_letter(
            decision, topic=self._settings.pubsub.dead_letter_topic_path(), done=dead_lettered
        )

    def _routed(self, delivery: Delivery, order_id: str, error: BaseException | None) -> None:
        if error is None:
            return
        if is_too_large(error):  # the routing attributes pushed it over Pub/Sub's limit
            detail = f"routed copy: {error}"
            self._dead_letter(
                DeadLetter((delivery,), Reason.INTERNAL_ERROR, detail, "route", order_id)
            )
        else:
            delivery.nack()  # Pub/Sub is refusing publishes: redelivery is the way on

    def _settle(self, deliveries: list[Delivery]) -> None:
        unary = self.unary_acks
        if unary is not None:
            unary.ack(deliveries)
            return
        for delivery in deliveries:
            delivery.ack()
