"""What happened when a decision was carried out: the events the executor hands back.

Every outcome, including an exception nobody planned for, comes back to the engine as one of
these values; the engine decides what follows. Nothing that goes wrong while carrying out a
decision can end the engine's loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from dispatcher.core.decisions import DeadLetter, Repark
from dispatcher.core.order import Reason

R = TypeVar("R")


class Failure(StrEnum):
    """How a create failed, which decides what the engine does next."""

    #: No definite answer (timeout, 5xx, dropped connection): the Workflow may or may not
    #: exist. The same name is tried again; the batch is never re-formed.
    UNKNOWN = "unknown"
    #: The API refused it for good (400/403/404/422, template missing): dead-letter.
    PERMANENT = "permanent"
    #: A bug (an exception of no known kind): dead-lettered with reason ``internal_error``.
    UNEXPECTED = "unexpected"


@dataclass(frozen=True, slots=True)
class Created:
    """The Workflow exists (created now, or 409: it was there already)."""

    name: str
    existed: bool = False


@dataclass(frozen=True, slots=True)
class CreateFailed:
    name: str
    failure: Failure
    detail: str
    reason: Reason = Reason.REJECTED_BY_API
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class NotClaimed:
    """Nothing was created: another replica claims ``contested`` (or already holds them in a
    Workflow), or, with ``contested`` empty, the claim itself could not be made."""

    name: str
    contested: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PublishFailed(Generic[R]):
    """A dead letter or a re-park copy could not be published; nothing was settled."""

    decision: DeadLetter[R] | Repark[R]
    detail: str
    too_large: bool = False


Outcome = Created | CreateFailed | NotClaimed | PublishFailed[R]
