"""Whether a closed batch may become a Workflow now, or must wait (the backlog stays upstream).

The decision is a value. ``Hold`` is never a failure: the orders stay leased and are offered
again when the cluster has room, so backpressure never dead-letters a healthy order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dispatcher.core.ratelimit import TokenBucket


class HoldReason(StrEnum):
    CLASS_CAP = "class_cap"
    OBJECT_CAP = "object_cap"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class Admit:
    pass


@dataclass(frozen=True, slots=True)
class Hold:
    reason: HoldReason
    retry_after: float | None  # seconds, when known (rate); None = when counts change


@dataclass(frozen=True, slots=True)
class Occupancy:
    """What the cluster holds now, counting creates in flight as already there."""

    live_in_class: int
    objects_total: int


@dataclass(frozen=True, slots=True)
class Caps:
    max_live_in_class: int
    max_objects: int


def decide(occupancy: Occupancy, caps: Caps, bucket: TokenBucket) -> Admit | Hold:
    """Admit one Workflow if every limit allows; take a rate token only when admitting."""
    if occupancy.live_in_class >= caps.max_live_in_class:
        return Hold(HoldReason.CLASS_CAP, None)
    if occupancy.objects_total >= caps.max_objects:
        return Hold(HoldReason.OBJECT_CAP, None)
    if not bucket.try_acquire():
        return Hold(HoldReason.RATE, bucket.wait_time())
    return Admit()
