"""From a valid order to a ticket: pick the size class, apply step defaults, pre-encode.

Pre-encoding the order's Workflow item once here lets the batcher bound Workflow objects by
bytes without re-serialising, and lets rendering simply join the items.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Generic, TypeVar

from dispatcher.core.order import Order, Reason, Rejection
from dispatcher.core.order_data import uri_scheme
from dispatcher.core.settings import Settings, SizeClass
from dispatcher.core.wire_size import OBJECT_OVERHEAD_BYTES, order_object_bytes

R = TypeVar("R")


@dataclass(slots=True)
class Ticket(Generic[R]):
    """An order the dispatcher holds, with every delivery of it (``receipts``) to settle later.

    ``receipts`` are opaque to the core: Pub/Sub messages in the service, line numbers in
    ``dispatcher plan``. Redeliveries of the same order join the same ticket.
    """

    order: Order
    size_class: str
    item_json: str
    received_at: float
    receipts: list[R] = field(default_factory=list)
    # copies of the order's key fields: read many times per order in the hot path
    order_id: str = field(init=False)
    size_bytes: int = field(init=False)
    #: bytes this order adds to the stored Workflow object (core/wire_size.py)
    object_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.order_id = self.order.order_id
        self.size_bytes = self.order.input.size_bytes
        self.object_bytes = order_object_bytes(self.item_json, self.order_id)


class Classifier:
    """Maps orders onto the configured size classes (first class whose bound fits)."""

    def __init__(self, settings: Settings) -> None:
        self._classes = list(settings.classes)
        self._bounds = [
            c.max_size_bytes if c.max_size_bytes is not None else 2**63 for c in self._classes
        ]
        self._steps = dict(settings.optional_steps)
        self._step_names = frozenset(self._steps)
        self._sorted_steps = sorted(self._steps.items())
        #: the step flags of an order that sets none (most orders): built once
        self._default_flags = self._flags({})
        self._max_object_bytes = settings.orders.max_workflow_object_bytes
        self._schemes = frozenset(s.lower() for s in settings.orders.allowed_uri_schemes)

    def size_class_for(self, size_bytes: int) -> SizeClass | None:
        index = bisect.bisect_left(self._bounds, size_bytes)
        return self._classes[index] if index < len(self._classes) else None

    def ticket(self, order: Order, *, now: float, receipt: R) -> Ticket[R] | Rejection:
        if order.steps and not self._step_names.issuperset(order.steps):
            unknown = sorted(set(order.steps) - self._step_names)
            return Rejection(
                Reason.UNKNOWN_STEP,
                f"unknown optional step(s) {unknown}; known: {sorted(self._steps)}",
                order.order_id,
            )
        scheme = uri_scheme(order.input.uri)
        if scheme not in self._schemes:
            return Rejection(
                Reason.URI_SCHEME,
                f"input.uri scheme {scheme!r:.40} is not allowed; allowed: {sorted(self._schemes)}",
                order.order_id,
            )
        size_class = self.size_class_for(order.input.size_bytes)
        if size_class is None:
            return Rejection(
                Reason.NO_SIZE_CLASS,
                f"input.size_bytes={order.input.size_bytes} is above every class's bound",
                order.order_id,
            )
        ticket = Ticket(
            order=order,
            size_class=size_class.name,
            item_json=self.item_json(order),
            received_at=now,
            receipts=[receipt],
        )
        if OBJECT_OVERHEAD_BYTES + ticket.object_bytes > self._max_object_bytes:
            # Escaping can make a body under max_order_bytes several times larger in the
            # Workflow; a batch of one must still fit.
            return Rejection(
                Reason.BODY_TOO_LARGE,
                f"the order takes {ticket.object_bytes} bytes in a Workflow object (after JSON "
                f"escaping); the limit is {self._max_object_bytes - OBJECT_OVERHEAD_BYTES}",
                order.order_id,
            )
        return ticket

    def item_json(self, order: Order) -> str:
        """The order as one element of the Workflow's ``orders`` argument (keys sorted).

        Built by hand around one encoder: this runs once per order in the hot path, where
        ``json.dumps`` of a fresh dict costs several times more.
        """
        encode = encode_basestring
        flags = self._flags(order.steps) if order.steps else self._default_flags
        return (
            f'{{"input_uri":{encode(order.input.uri)},"order_id":{encode(order.order_id)},'
            f'"params":{_ENCODE(order.params) if order.params else "{}"},'
            f'"priority":{order.priority},"size_bytes":{order.input.size_bytes}{flags},'
            f'"work_key":"{work_key(order.order_id)}"}}'
        )

    def _flags(self, steps: dict[str, bool]) -> str:
        return "".join(
            f',"step_{step}":{"true" if steps.get(step, default) else "false"}'
            for step, default in self._sorted_steps
        )


# allow_nan off: the order model already refuses non-finite numbers; should one slip through,
# failing here (one order) beats Argo failing the whole batch on `NaN`.
def work_key(order_id: str) -> str:
    """The order's storage path segment (``WORK_URI``): 32 hex characters of SHA-256 of the id.

    A hash, not the id: ids may hold any printable text, and a path built from one could name
    another order's prefix (``a/../b``) or look like one (``a`` vs ``a/``).
    """
    return hashlib.sha256(order_id.encode("utf-8")).hexdigest()[:32]


_ENCODE = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode
