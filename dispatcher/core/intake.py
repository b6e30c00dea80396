"""One intake: message bytes and attributes in, a ticket or a refusal with its reason out.

The engine, the ``class_topics`` router and ``dispatcher plan`` all start an order's life
here, so a message is judged the same way wherever it arrives (the contract lives in
:mod:`dispatcher.core.order`, the size classes in :mod:`dispatcher.core.classify`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order import Rejection, parse_order
from dispatcher.core.settings import Settings

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Refused:
    """A message that cannot become a ticket, and the stage that said so."""

    rejection: Rejection
    stage: str  # "validate" (the contract) or "classify" (the configuration)


class Intake:
    """Validates and classifies messages against one configuration."""

    def __init__(self, settings: Settings) -> None:
        self.classifier = Classifier(settings)
        self._max_bytes = settings.orders.max_order_bytes

    def __call__(
        self, data: bytes, attributes: Mapping[str, str], *, receipt: R, now: float
    ) -> Ticket[R] | Refused:
        parsed = parse_order(data, attributes, max_bytes=self._max_bytes)
        if isinstance(parsed, Rejection):
            return Refused(parsed, "validate")
        ticket = self.classifier.ticket(parsed, now=now, receipt=receipt)
        if isinstance(ticket, Rejection):
            return Refused(ticket, "classify")
        return ticket
