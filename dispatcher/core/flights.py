"""The engine's bookkeeping for work that has left it: creates in flight, retries due later.

A create whose answer was lost stays in flight under its name until the API (or the watch)
gives a definite answer; a publish that failed is tried again after a backoff. Both wait here,
with the time they are due, so the engine's loop only has to look at deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from dispatcher.core.batching import Batch
from dispatcher.core.decisions import Create, DeadLetter, Repark

R = TypeVar("R")

AGE_CHECK_SECONDS = 5.0
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine needs besides the configuration's shape: who it is and its bounds."""

    identity: str = ""
    max_in_flight: int = 8  # creates outstanding at once (the executor's workers)


def backoff(attempt: int) -> float:
    """Seconds before try ``attempt + 1``: doubling from 0.5 s, at most 30 s."""
    return float(min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** min(attempt, 8)))


@dataclass(slots=True)
class _InFlight(Generic[R]):
    batch: Batch[R]
    create: Create
    attempts: int = 1
    retry_at: float | None = None  # set while waiting to try the same create again


@dataclass(slots=True)
class _Deferred(Generic[R]):
    due: float
    decision: DeadLetter[R] | Repark[R] = field(compare=False)
