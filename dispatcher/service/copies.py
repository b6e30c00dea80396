"""Publish a copy of a delivery, then settle it: the one path of the executor and the router.

Why one module: the executor's dead letters and re-parks and the router's class-topic copies
and dead letters all do the same thing. The copy is published within Pub/Sub's size limits
(``publish_copy``), the deliveries are acked only once it is stored, a dead letter falls back
to its compact attributes, and a poison message that fits nowhere is nacked so that Pub/Sub's
own dead-letter policy stores it intact. The log lines and counters of those steps are the
same wherever they happen. What a failure means differs (the executor gives it to the engine
as an event, the router nacks), so each caller says it through ``done``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from dispatcher.adapters.pubsub import (
    Delivery,
    Done,
    Publisher,
    fitting_dead_letter_attributes,
    is_too_large,
    publish_copy,
)
from dispatcher.adapters.pubsub_limits import TooLargeToDeadLetter
from dispatcher.core.decisions import DeadLetter
from dispatcher.logging import get_logger
from dispatcher.service.metrics import Metrics

log = get_logger()

D = TypeVar("D", bound=Delivery)


class Copies(Generic[D]):
    """Publishes copies of deliveries and settles the deliveries after; never raises."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        metrics: Metrics,
        settle: Callable[[list[D]], None],
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._settle = settle

    def dead_letter(self, decision: DeadLetter[D], *, topic: str, done: Done) -> None:
        """Store ``decision``'s delivery on the dead-letter topic, then ack its deliveries.

        Logged and counted on the first attempt only (the engine retries failed publishes).
        A dead letter too large even in its compact form is nacked and reported to ``done`` as
        :class:`TooLargeToDeadLetter`.
        """
        delivery = decision.receipt
        try:
            if decision.attempt == 1:
                self._metrics.dead_lettered(decision.reason)
                log.warning(
                    "order_dead_lettered",
                    order_id=decision.order_id,
                    message_id=delivery.message_id,
                    reason=decision.reason.value,
                    detail=decision.detail,
                    stage=decision.stage,
                )
            attributes = fitting_dead_letter_attributes(topic, delivery, decision)
        except Exception as exc:  # noqa: BLE001 - a bug here is reported, never raised
            done(exc)
            return

        def finished(error: BaseException | None) -> None:
            if error is not None and is_too_large(error):
                self._left_to_pubsub(decision.receipts)
                error = TooLargeToDeadLetter(str(error))
            done(error)

        if attributes is None:
            finished(TooLargeToDeadLetter(f"message {delivery.message_id}: even compact"))
            return
        self.copy(decision.receipts, topic=topic, attributes=attributes, done=finished)

    def copy(
        self,
        receipts: Sequence[D],
        *,
        topic: str,
        attributes: Mapping[str, str],
        done: Done,
    ) -> None:
        """Publish the first delivery's data with ``attributes``, then ack every delivery."""
        first = receipts[0]

        def settle() -> None:
            try:
                self._settle(list(receipts))
            except Exception as exc:  # noqa: BLE001 - the copy is stored; dedupe holds
                log.error("ack_failed", message_id=first.message_id, error=repr(exc))

        def finished(error: BaseException | None) -> None:
            if error is not None and not is_too_large(error):
                log.error("publish_failed", message_id=first.message_id, error=str(error))
            done(error)

        publish_copy(
            self._publisher,
            topic=topic,
            delivery=first,
            attributes=attributes,
            settle=settle,
            done=finished,
        )

    def _left_to_pubsub(self, receipts: Sequence[D]) -> None:
        """A poison message: nacked, so that Pub/Sub's dead-letter policy keeps it intact."""
        self._metrics.dead_letters_too_large.inc()
        log.error("dead_letter_too_large", message_id=receipts[0].message_id)
        for receipt in receipts:
            receipt.nack()
