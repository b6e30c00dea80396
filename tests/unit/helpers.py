"""Small builders shared by the unit tests."""

from __future__ import annotations

from dispatcher.config import Settings, load_settings
from dispatcher.core.classify import Classifier, Ticket
from dispatcher.core.order import Order, OrderInput


def settings(**limits: object) -> Settings:
    base = load_settings(environ={})
    if not limits:
        return base
    return base.model_copy(update={"limits": base.limits.model_copy(update=limits)})


def order(order_id: str, size: int = 1000, **extra: object) -> Order:
    return Order(
        order_id=order_id,
        input=OrderInput(uri="gs://b/" + order_id.replace(" ", "%20"), size_bytes=size),
        **extra,
    )  # type: ignore[arg-type]


def ticket(cfg: Settings, order_id: str, size: int = 1000, now: float = 0.0) -> Ticket[str]:
    made = Classifier(cfg).ticket(order(order_id, size), now=now, receipt=f"m-{order_id}")
    assert isinstance(made, Ticket)
    return made
